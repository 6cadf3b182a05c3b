package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func startHealthApp(t *testing.T, name string, healthy bool) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && !healthy {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// health_check (an edgeproxy extension): a server whose health URI fails is
// taken out before any client request reaches it.
func TestActiveHealthCheck(t *testing.T) {
	good, bad := startHealthApp(t, "good", true), startHealthApp(t, "bad", false)
	conf := fmt.Sprintf(`
worker_processes 1;
events { worker_connections 64; }
http {
    upstream app {
        server %s;
        server %s;
        health_check interval=100ms uri=/health fails=1 passes=1 match=200-399;
    }
    server {
        listen 127.0.0.1:{{.Port}};
        location / { proxy_pass http://app; }
    }
}`, good, bad)
	edge := start(t, "edgeproxy", conf, t.TempDir())
	time.Sleep(500 * time.Millisecond)
	var got []string
	for i := 0; i < 10; i++ {
		r := roundTrip(t, edge.Addr, get("/x"), false)
		got = append(got, string(r.Body))
	}
	if strings.Count(strings.Join(got, ","), "good") != 10 {
		t.Fatalf("requests reached the unhealthy server: %v", got)
	}
}

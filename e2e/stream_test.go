package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func startSSE(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if a := r.URL.Query().Get("accel"); a != "" {
			w.Header().Set("X-Accel-Buffering", a)
		}
		f := w.(http.Flusher)
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			f.Flush()
			time.Sleep(400 * time.Millisecond)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

const streamConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        location /events/ {
            proxy_pass http://APP;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
        location /buffered/ {
            proxy_pass http://APP;
        }
    }
}
`

// proxy_buffering off (or X-Accel-Buffering: no from the app) relays
// server-sent events as they come (the first event arrives long before the
// app finishes), like nginx; the buffered location delivers everything at
// the end. The app's "X-Accel-Buffering: yes" does not turn buffering back
// on under proxy_buffering off, in nginx either.
func TestStreamingDifferential(t *testing.T) {
	app := startSSE(t)
	ngx, edge := pair(t, strings.ReplaceAll(streamConf, "APP", app), t.TempDir())
	for _, s := range []*server{ngx, edge} {
		for _, tc := range []struct {
			path     string
			streamed bool
		}{{"/events/x", true}, {"/buffered/x", false},
			// The app's "X-Accel-Buffering: no" turns buffering off; its
			// "yes" does not turn it on under proxy_buffering off.
			{"/buffered/x?accel=no", true}, {"/events/x?accel=yes", true}} {
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			io.WriteString(c, "GET "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", s.Name, tc.path, err)
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			first := time.Since(start)
			if err != nil || line != "data: 1\n" {
				t.Fatalf("%s %s: first line %q %v", s.Name, tc.path, line, err)
			}
			if tc.streamed && first > 600*time.Millisecond {
				t.Errorf("%s %s: first event after %v, want it streamed", s.Name, tc.path, first)
			}
			if !tc.streamed && first < 900*time.Millisecond {
				t.Errorf("%s %s: first event after %v, want the buffered whole", s.Name, tc.path, first)
			}
			c.Close()
		}
	}
	// The whole streamed body, in order, and the connection stays usable.
	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /events/x HTTP/1.1\r\nHost: x\r\n\r\nGET /buffered/y HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for i, want := range []string{"data: 1\n\ndata: 2\n\ndata: 3\n\n", "data: 1\n\ndata: 2\n\ndata: 3\n\n"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Fatalf("response %d: %q", i, b)
		}
	}
}

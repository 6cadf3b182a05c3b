package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// QUIT is a graceful stop: a slow request in flight completes (with
// "Connection: close"), idle keep-alive connections are closed, and the
// process exits.
func TestGracefulQuit(t *testing.T) {
	app := startCountingApp(t)
	conf := strings.ReplaceAll(`
worker_processes 1;
events { worker_connections 64; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        location / { proxy_pass http://APP; }
    }
}`, "APP", app.addr)
	edge := start(t, "edgeproxy", conf, t.TempDir())
	idle, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_ = busy.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(busy, "GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n") // the app sleeps 300 ms
	time.Sleep(100 * time.Millisecond)
	if err := edge.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(newReader(busy), nil)
	if err != nil {
		t.Fatalf("in-flight request lost: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/api/slow") {
		t.Fatalf("in-flight request: %d %q", resp.StatusCode, body)
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("idle connection not closed: %d %v", n, err)
	}
	done := make(chan error, 1)
	go func() { done <- edge.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(8 * time.Second):
		t.Fatal("edgeproxy did not exit after QUIT")
	}
}

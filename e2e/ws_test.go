package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startEchoUpgrade is an app that switches protocols on Upgrade requests and
// then echoes every byte (the transport part of a WebSocket server).
func startEchoUpgrade(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			io.WriteString(w, "plain "+r.Header.Get("Connection")+"\n")
			return
		}
		hj, _ := w.(http.Hijacker)
		conn, brw, err := hj.Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test-accept\r\n\r\n")
		io.Copy(conn, brw)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

const wsConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:{{.Port}};
        location /ws/ {
            proxy_pass http://APP;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 5s;
        }
    }
}
`

// The common WebSocket idiom (map + proxy_set_header Upgrade/Connection):
// 101 then a bidirectional tunnel, like nginx; plain requests still work.
func TestWebSocketTunnelDifferential(t *testing.T) {
	app := startEchoUpgrade(t)
	ngx, edge := pair(t, strings.ReplaceAll(wsConf, "APP", app), t.TempDir())
	for _, s := range []*server{ngx, edge} {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Sec-Websocket-Accept") != "test-accept" ||
			!strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
			t.Errorf("%s: %d %v", s.Name, resp.StatusCode, resp.Header)
		}
		for _, msg := range []string{"hello", strings.Repeat("x", 100000)} {
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
				t.Fatalf("%s: echo of %d bytes: %v", s.Name, len(msg), err)
			}
		}
		c.Close()
	}
	differential(t, ngx, edge, []dcase{{name: "plain", raw: "GET /ws/x HTTP/1.1\r\nHost: x\r\n\r\n", status: 200}})
}

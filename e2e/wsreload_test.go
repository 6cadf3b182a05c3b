package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const wsReloadConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        location /ws/ {
            proxy_pass http://APP;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 30s;
        }
        location = /version { return 200 "VERSION\n"; }
    }
    EXTRA
}
`

// An established WebSocket tunnel survives reloads that keep its route,
// including ones that add and remove other listening sockets (nginx and
// Caddy close or orphan them: their users complain).
func TestWebSocketSurvivesReload(t *testing.T) {
	app := startEchoUpgrade(t)
	conf := strings.ReplaceAll(wsReloadConf, "APP", app)
	edge := start(t, "edgeproxy", strings.ReplaceAll(strings.ReplaceAll(conf, "VERSION", "v0"), "EXTRA", ""), t.TempDir())
	cf := filepath.Join(edge.Dir, "nginx.conf")
	rendered, _ := os.ReadFile(cf)
	other := freePort(t)

	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	io.WriteString(c, "GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echo := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatalf("tunnel write after reload: %v", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("tunnel echo after reload: %q %v", got, err)
		}
	}
	echo("before")
	for i := 1; i <= 6; i++ {
		v := fmt.Sprintf("v%d", i)
		extra := ""
		if i%2 == 1 {
			// Odd reloads add a listening socket, even ones remove it.
			extra = fmt.Sprintf("server { listen 127.0.0.1:%d; return 200 \"other\\n\"; }", other)
		}
		text := strings.Replace(string(rendered), `"v0\n"`, `"`+v+`\n"`, 1)
		text = strings.Replace(text, "\n    \n}", "\n    "+extra+"\n}", 1)
		if err := os.WriteFile(cf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := edge.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitBody2(t, edge.Addr, "/version", v+"\n")
		if i%2 == 1 {
			waitBody2(t, fmt.Sprintf("127.0.0.1:%d", other), "/", "other\n")
		}
		echo(fmt.Sprintf("after reload %d", i))
	}
}

// waitBody2 waits (bounded) until GET path on addr answers body.
func waitBody2(t *testing.T, addr, path, body string) {
	t.Helper()
	var last reply
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if last = roundTrip(t, addr, get(path), false); string(last.Body) == body {
			return
		}
	}
	t.Fatalf("GET %s on %s never answered %q (last: %d %q %v)", path, addr, body, last.Status, last.Body, last.Err)
}

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const flaskApp = `
from flask import Flask, request

app = Flask(__name__)

@app.route("/", defaults={"p": ""}, methods=["GET", "POST", "PUT"])
@app.route("/<path:p>", methods=["GET", "POST", "PUT"])
def echo(p):
    return {
        "method": request.method,
        "path": request.full_path,
        "host": request.host,
        "xff": request.headers.get("X-Forwarded-For"),
        "real_ip": request.headers.get("X-Real-IP"),
        "proto": request.headers.get("X-Forwarded-Proto"),
        "connection": request.headers.get("Connection"),
        "body": request.get_data(as_text=True),
    }
`

// startGunicorn runs a real Gunicorn + Flask app on loopback.
func startGunicorn(t *testing.T) string {
	t.Helper()
	gun, err := exec.LookPath("gunicorn")
	if err != nil {
		t.Skip("gunicorn is not installed (make test installs it)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(flaskApp), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(gun, "-w", "2", "-b", addr, "--chdir", dir, "app:app")
	// Debian's gunicorn runs on Debian's python3 with python3-flask.
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("gunicorn did not start: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The seed's proxy block in front of a real Gunicorn/Flask app: what the
// app sees (forwarded headers, URI, body) is the same through edgeproxy as
// through nginx.
func TestGunicornDifferential(t *testing.T) {
	app := startGunicorn(t)
	conf := strings.ReplaceAll(`
worker_processes 1;
events { worker_connections 1024; }
http {
    upstream backend { server APP; keepalive 8; }
    server {
        listen 127.0.0.1:{{.Port}};
        server_name example.com;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
        location /api/ {
            proxy_pass http://APP/v2/;
            proxy_set_header Host $host;
        }
    }
}`, "APP", app)
	ngx, edge := pair(t, conf, t.TempDir())
	differential(t, ngx, edge, []dcase{
		{name: "root", raw: "GET /?a=1&b=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 200},
		{name: "xff", raw: "GET /x HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n", status: 200},
		{name: "post-json", raw: "POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"k\": \"v\"}\n\r\n", status: 200},
		{name: "put-chunked", raw: "PUT /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndata\r\n0\r\n\r\n", status: 200},
		{name: "uri-replaced", raw: "GET /api/items/7?x=y HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 200},
		{name: "flask-404", raw: "DELETE /x HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 405},
	})
}

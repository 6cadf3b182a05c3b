package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is a loopback app server that reports what it received, like a
// small Flask app would.
type backend struct {
	addr string
	name string
	srv  *http.Server
	mu   sync.Mutex
	hits int
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: l.Addr().String(), name: name}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits++
		b.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		var names []string
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		var sb strings.Builder
		fmt.Fprintf(&sb, "server=%s\nmethod=%s\nuri=%s\nhost=%s\nproto=%s\n", b.name, r.Method, r.RequestURI, r.Host, r.Proto)
		for _, k := range names {
			if k == "User-Agent" {
				continue
			}
			fmt.Fprintf(&sb, "h:%s=%s\n", k, strings.Join(r.Header[k], ","))
		}
		fmt.Fprintf(&sb, "te=%v cl=%d body=%q\n", r.TransferEncoding, r.ContentLength, body)
		switch {
		case strings.HasPrefix(r.URL.Path, "/app/notfound"):
			w.Header().Set("X-App", "custom")
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.WriteHeader(404)
		case strings.HasPrefix(r.URL.Path, "/app/redirect"):
			w.Header().Set("Location", "http://"+b.addr+"/app/target")
			w.WriteHeader(302)
		case strings.HasPrefix(r.URL.Path, "/app/slow"):
			time.Sleep(1500 * time.Millisecond)
		case strings.HasPrefix(r.URL.Path, "/app/fail"):
			w.WriteHeader(500)
		case strings.HasPrefix(r.URL.Path, "/app/xaccel"):
			w.Header().Set("X-Accel-Redirect", "/protected/secret.txt")
			w.Header().Set("Content-Type", "application/x-ignored")
			return
		case strings.HasPrefix(r.URL.Path, "/app/nobody"):
			w.WriteHeader(204)
			return
		}
		io.WriteString(w, sb.String())
	})
	b.srv = &http.Server{Handler: mux}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// deadAddr is a loopback port with nothing listening.
func deadAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

const proxyConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    upstream app {
        server BACKEND_A weight=3;
        server BACKEND_B;
    }
    upstream dead { server DEAD; }
    server {
        listen 127.0.0.1:{{.Port}};
        server_name localhost;
        root {{.Dir}};
        location /app/ {
            proxy_pass http://BACKEND_A;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1s;
            add_header X-Upstream-Status $upstream_status;
        }
        location /v1/ {
            proxy_pass http://BACKEND_A/app/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /balanced/ {
            proxy_pass http://app;
        }
        location /dead/ {
            proxy_pass http://dead;
        }
        location /deadpage/ {
            proxy_pass http://dead;
            error_page 502 /50x.html;
        }
        location /intercept/ {
            proxy_pass http://BACKEND_A/app/;
            proxy_intercept_errors on;
            error_page 500 /50x.html;
        }
        location = /50x.html { }
        location /protected/ { internal; alias {{.Dir}}/protected/; }
    }
}
`

func proxyPair(t *testing.T) (ngx, edge *server, a, b *backend) {
	a, b = startBackend(t, "a"), startBackend(t, "b")
	conf := strings.NewReplacer("BACKEND_A", a.addr, "BACKEND_B", b.addr, "DEAD", deadAddr(t)).Replace(proxyConf)
	docs := t.TempDir()
	if err := os.WriteFile(filepath.Join(docs, "50x.html"), []byte("<p>sorry</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Join(docs, "protected"), 0o755)
	if err := os.WriteFile(filepath.Join(docs, "protected/secret.txt"), []byte("secret file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ngx, edge = pair(t, conf, docs)
	return ngx, edge, a, b
}

func TestProxyDifferential(t *testing.T) {
	ngx, edge, _, _ := proxyPair(t)
	differential(t, ngx, edge, []dcase{
		{name: "get", raw: get("/app/x?y=1", "User-Agent: t\r\nAccept: */*\r\n"), status: 200},
		{name: "xff-chain", raw: get("/app/x", "X-Forwarded-For: 10.0.0.1\r\n"), status: 200},
		{name: "hop-by-hop", raw: get("/app/x", "Connection: keep-alive, X-Foo\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Foo: 1\r\n"), status: 200},
		{name: "post-cl", raw: "POST /app/form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", status: 200},
		{name: "post-chunked", raw: "POST /app/up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", status: 200},
		{name: "head", raw: "HEAD /app/x HTTP/1.1\r\nHost: localhost\r\n\r\n", head: true, status: 200},
		{name: "app-404", raw: get("/app/notfound"), status: 404},
		{name: "app-204", raw: get("/app/nobody"), status: 204},
		{name: "redirect-rewritten", raw: get("/app/redirect"), status: 302},
		{name: "uri-replace", raw: get("/v1/a%20b?q=1"), status: 200},
		{name: "auto-redirect", raw: get("/v1"), status: 301},
		{name: "timeout-504", raw: get("/app/slow"), status: 504},
		{name: "dead-502", raw: get("/dead/x"), status: 502},
		{name: "dead-error-page", raw: get("/deadpage/x"), status: 502},
		{name: "intercept", raw: get("/intercept/fail"), status: 500},
		{name: "no-intercept-404", raw: get("/intercept/notfound"), status: 404},
		{name: "x-accel-redirect", raw: get("/app/xaccel"), status: 200},
		{name: "x-accel-post", raw: "POST /app/xaccel HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nab", status: 200},
		{name: "internal-direct", raw: get("/protected/secret.txt"), status: 404},
	})
}

// A dead backend costs one 502; the next request on the same connection
// works.
func TestProxyDeadBackendThenNext(t *testing.T) {
	_, edge, _, _ := proxyPair(t)
	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, get("/dead/x")+get("/app/ok"))
	br := newReader(c)
	for i, want := range []int{502, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("response %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
}

// Weighted round robin splits like nginx (3:1), request by request.
func TestProxyWeightedSplit(t *testing.T) {
	ngx, edge, _, _ := proxyPair(t)
	seq := func(s *server) string {
		var out []string
		for i := 0; i < 40; i++ {
			r := roundTrip(t, s.Addr, get("/balanced/x"), false)
			if r.Status != 200 {
				t.Fatalf("%s: status %d", s.Name, r.Status)
			}
			out = append(out, strings.TrimPrefix(strings.SplitN(string(r.Body), "\n", 2)[0], "server="))
		}
		return strings.Join(out, "")
	}
	n, e := seq(ngx), seq(edge)
	if n != e {
		t.Fatalf("backend sequence differs:\n nginx     %s\n edgeproxy %s", n, e)
	}
	if strings.Count(e, "a") != 30 {
		t.Fatalf("split %s, want 30 a / 10 b", e)
	}
}

// Pipelined requests through the proxy come back in order.
func TestProxyPipelined(t *testing.T) {
	_, edge, _, _ := proxyPair(t)
	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var sb strings.Builder
	for i := 0; i < 10; i++ {
		sb.WriteString(get(fmt.Sprintf("/app/n%d", i)))
	}
	io.WriteString(c, sb.String())
	br := newReader(c)
	for i := 0; i < 10; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), fmt.Sprintf("uri=/app/n%d\n", i)) {
			t.Fatalf("response %d out of order: %q", i, body)
		}
	}
}

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type countingApp struct {
	addr string
	srv  *http.Server
	mu   sync.Mutex
	hits map[string]int
}

func (a *countingApp) count(p string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits[p]
}

func startCountingApp(t *testing.T) *countingApp {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &countingApp{addr: l.Addr().String(), hits: map[string]int{}}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hits[r.URL.Path]++
		n := a.hits[r.URL.Path]
		a.mu.Unlock()
		switch r.URL.Path {
		case "/api/missing":
			w.WriteHeader(404)
		case "/api/cookie":
			w.Header().Set("Set-Cookie", "s=1")
		case "/api/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/api/slow":
			time.Sleep(300 * time.Millisecond)
		case "/api/vary":
			w.Header().Set("Vary", "Accept-Language")
			fmt.Fprintf(w, "lang=%s ", r.Header.Get("Accept-Language"))
		}
		w.Header().Set("ETag", `"v1"`)
		fmt.Fprintf(w, "%s %s #%d\n", r.Method, r.URL.Path, n)
	})}
	go a.srv.Serve(l)
	t.Cleanup(func() { a.srv.Close() })
	return a
}

const cacheConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    proxy_cache_path {{.Tmp}}/cache levels=1:2 keys_zone=api_cache:10m max_size=100m inactive=60m use_temp_path=off;
    server {
        listen 127.0.0.1:{{.Port}};
        location /api/ {
            proxy_pass http://APP;
            proxy_cache api_cache;
            proxy_cache_valid 200 302 10m;
            proxy_cache_valid 404 1m;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
            proxy_cache_lock on;
            add_header X-Proxy-Cache $upstream_cache_status;
        }
        location /short/ {
            proxy_pass http://APP/api/;
            proxy_cache api_cache;
            proxy_cache_valid 200 1s;
            proxy_cache_use_stale error timeout;
            add_header X-Proxy-Cache $upstream_cache_status;
        }
    }
}
`

// The seed's cache block, nginx vs edgeproxy, each in front of its own
// counting app: same X-Proxy-Cache sequence, same number of app hits.
func TestProxyCacheDifferential(t *testing.T) {
	appN, appE := startCountingApp(t), startCountingApp(t)
	nginxBinary(t)
	ngx := start(t, "nginx", strings.ReplaceAll(cacheConf, "APP", appN.addr), t.TempDir())
	edge := start(t, "edgeproxy", strings.ReplaceAll(cacheConf, "APP", appE.addr), t.TempDir())
	seq := []struct{ name, raw string }{
		{"miss", get("/api/products")},
		{"hit", get("/api/products")},
		{"hit-again", get("/api/products")},
		{"404-miss", get("/api/missing")},
		{"404-hit", get("/api/missing")},
		{"cookie-1", get("/api/cookie")},
		{"cookie-2", get("/api/cookie")},
		{"nostore-1", get("/api/nostore")},
		{"nostore-2", get("/api/nostore")},
		{"post-1", "POST /api/products HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"},
		{"head-after-get", "HEAD /api/products HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"inm-304", get("/api/products", "If-None-Match: \"v1\"\r\n")},
		{"vary-en", get("/api/vary", "Accept-Language: en\r\n")},
		{"vary-en-hit", get("/api/vary", "Accept-Language: en\r\n")},
		{"args-distinct", get("/api/products?page=2")},
	}
	for _, s := range seq {
		// ristretto admits entries asynchronously: give it a moment, as a
		// real client's next request would.
		time.Sleep(30 * time.Millisecond)
		head := strings.HasPrefix(s.raw, "HEAD")
		a := roundTrip(t, ngx.Addr, s.raw, head)
		b := roundTrip(t, edge.Addr, s.raw, head)
		if a.Status != b.Status || a.Header.Get("X-Proxy-Cache") != b.Header.Get("X-Proxy-Cache") || string(a.Body) != string(b.Body) {
			t.Errorf("%s: nginx %d %q %q, edgeproxy %d %q %q", s.name, a.Status, a.Header.Get("X-Proxy-Cache"), a.Body,
				b.Status, b.Header.Get("X-Proxy-Cache"), b.Body)
		}
	}
	for _, p := range []string{"/api/products", "/api/missing", "/api/cookie", "/api/nostore", "/api/vary"} {
		if appN.count(p) != appE.count(p) {
			t.Errorf("app hits for %s: behind nginx %d, behind edgeproxy %d", p, appN.count(p), appE.count(p))
		}
	}
}

// proxy_cache_lock: 30 concurrent misses for one key make one app request.
func TestProxyCacheLockCollapses(t *testing.T) {
	app := startCountingApp(t)
	edge := start(t, "edgeproxy", strings.ReplaceAll(cacheConf, "APP", app.addr), t.TempDir())
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := roundTrip(t, edge.Addr, get("/api/slow"), false)
			if r.Status == 200 && strings.HasPrefix(string(r.Body), "GET /api/slow #1") {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := app.count("/api/slow"); n != 1 || ok.Load() != 30 {
		t.Fatalf("app saw %d requests (want 1); %d/30 clients got the collapsed response", n, ok.Load())
	}
}

// proxy_cache_use_stale error: a dead app gets the stale entry, not a 502.
func TestProxyCacheStaleOnDeadApp(t *testing.T) {
	app := startCountingApp(t)
	edge := start(t, "edgeproxy", strings.ReplaceAll(cacheConf, "APP", app.addr), t.TempDir())
	r := roundTrip(t, edge.Addr, get("/short/products"), false)
	if r.Status != 200 || r.Header.Get("X-Proxy-Cache") != "MISS" {
		t.Fatalf("first: %d %q", r.Status, r.Header.Get("X-Proxy-Cache"))
	}
	time.Sleep(1200 * time.Millisecond)
	app.srv.Close()
	r = roundTrip(t, edge.Addr, get("/short/products"), false)
	if r.Status != 200 || r.Header.Get("X-Proxy-Cache") != "STALE" || !strings.Contains(string(r.Body), "#1") {
		t.Fatalf("dead app: %d %q %q, want the stale 200", r.Status, r.Header.Get("X-Proxy-Cache"), r.Body)
	}
	_, _ = io.Discard, time.Now
}

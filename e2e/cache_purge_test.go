package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const purgeConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    proxy_cache_path {{.Tmp}}/cache keys_zone=pz:10m;
    server {
        listen 127.0.0.1:{{.Port}};
        proxy_cache pz;
        proxy_cache_valid 200 10m;
        proxy_cache_key $uri;
        add_header X-Proxy-Cache $upstream_cache_status;
        location /api/ {
            proxy_pass http://APP;
            proxy_cache_purge PURGE from 127.0.0.1 127.0.1.0/24;
        }
        location /vary/ {
            proxy_pass http://APP/api/;
            proxy_cache_purge on;
        }
    }
}
`

// requestFrom sends method path from the loopback address src and returns
// the status, X-Proxy-Cache and body.
func requestFrom(t *testing.T, addr, src, method, path string, extra ...string) (int, string, string) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, method+" "+path+" HTTP/1.1\r\nHost: x\r\n"+strings.Join(extra, "")+"\r\n")
	resp, err := http.ReadResponse(newReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Proxy-Cache"), string(b)
}

// proxy_cache_purge (edgeproxy extension, the ngx_cache_purge syntax):
// PURGE removes one key, or every key with a prefix when it ends in '*',
// only from the listed addresses; variants go with their key.
func TestProxyCachePurge(t *testing.T) {
	app := startCountingApp(t)
	edge := start(t, "edgeproxy", strings.ReplaceAll(purgeConf, "APP", app.addr), t.TempDir())
	step := func(src, method, path, wantCache string, wantStatus int, extra ...string) string {
		t.Helper()
		time.Sleep(30 * time.Millisecond) // ristretto admits asynchronously
		st, xc, body := requestFrom(t, edge.Addr, src, method, path, extra...)
		if st != wantStatus || xc != wantCache {
			t.Errorf("%s %s from %s: %d %q %q, want %d %q", method, path, src, st, xc, body, wantStatus, wantCache)
		}
		return body
	}
	step("127.0.0.1", "GET", "/api/products", "MISS", 200)
	step("127.0.0.1", "GET", "/api/products", "HIT", 200)
	step("127.0.0.1", "GET", "/api/other", "MISS", 200)
	step("127.0.0.1", "GET", "/api/products/1", "MISS", 200)
	// Not from an allowed address: 403, the entry stays.
	step("127.0.0.2", "PURGE", "/api/products", "", 403)
	step("127.0.0.1", "GET", "/api/products", "HIT", 200)
	// One key.
	if b := step("127.0.1.7", "PURGE", "/api/products", "", 200); !strings.Contains(b, "Key: /api/products\n") || !strings.Contains(b, "Entries: 1") {
		t.Errorf("purge body %q", b)
	}
	step("127.0.0.1", "GET", "/api/products", "MISS", 200)
	step("127.0.0.1", "GET", "/api/other", "HIT", 200)
	step("127.0.0.1", "PURGE", "/api/missing", "", 404)
	// A prefix: /api/products and /api/products/1 go, /api/other stays.
	step("127.0.0.1", "GET", "/api/products/1", "HIT", 200)
	if b := step("127.0.0.1", "PURGE", "/api/products*", "", 200); !strings.Contains(b, "Entries: 2") {
		t.Errorf("prefix purge body %q", b)
	}
	step("127.0.0.1", "GET", "/api/products/1", "MISS", 200)
	step("127.0.0.1", "GET", "/api/other", "HIT", 200)
	step("127.0.0.1", "PURGE", "/api/nothing*", "", 404)
	// Variants (Vary: Accept-Language) are purged with their key; "on"
	// allows any address.
	step("127.0.0.1", "GET", "/vary/vary", "MISS", 200, "Accept-Language: en\r\n")
	step("127.0.0.1", "GET", "/vary/vary", "MISS", 200, "Accept-Language: de\r\n")
	step("127.0.0.1", "GET", "/vary/vary", "HIT", 200, "Accept-Language: en\r\n")
	step("127.0.0.3", "PURGE", "/vary/vary", "", 200)
	step("127.0.0.1", "GET", "/vary/vary", "MISS", 200, "Accept-Language: en\r\n")
	step("127.0.0.1", "GET", "/vary/vary", "MISS", 200, "Accept-Language: de\r\n")
	if n := app.count("/api/products"); n != 2 {
		t.Errorf("app saw /api/products %d times, want 2", n)
	}
}

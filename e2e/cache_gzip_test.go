package e2e

import (
	"strings"
	"testing"
	"time"
)

const cacheGzipConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    proxy_cache_path {{.Tmp}}/cache keys_zone=gz:10m;
    gzip on;
    gzip_min_length 1;
    gzip_types text/plain;
    gzip_vary on;
    server {
        listen 127.0.0.1:{{.Port}};
        location /g/ {
            proxy_pass http://APP;
            proxy_cache gz;
            proxy_cache_valid 200 1m;
            add_header X-Proxy-Cache $upstream_cache_status;
        }
    }
}
`

// gzip applies to responses served from the cache as to fresh ones, and a
// compressed response gets no byte ranges (nginx's gzip filter runs before
// its range filter).
func TestProxyCacheGzipDifferential(t *testing.T) {
	appN, appE := startValidatorApp(t), startValidatorApp(t)
	nginxBinary(t)
	ngx := start(t, "nginx", strings.ReplaceAll(cacheGzipConf, "APP", appN.addr), t.TempDir())
	edge := start(t, "edgeproxy", strings.ReplaceAll(cacheGzipConf, "APP", appE.addr), t.TempDir())
	const ae = "Accept-Encoding: gzip\r\n"
	for _, s := range []cacheStep{
		{name: "miss-gzip", raw: get("/g/ar1", ae)},
		{name: "hit-gzip", raw: get("/g/ar1", ae)},
		{name: "hit-plain", raw: get("/g/ar1")},
		{name: "hit-gzip-range", raw: get("/g/ar1", ae, "Range: bytes=0-1\r\n")},
		{name: "hit-plain-range", raw: get("/g/ar1", "Range: bytes=0-1\r\n")},
		{name: "hit-gzip-304", raw: get("/g/ar1", ae, "If-None-Match: \"r1\"\r\n")},
		{name: "hit-gzip-head", raw: "HEAD /g/ar1 HTTP/1.1\r\nHost: x\r\n" + ae + "\r\n"},
		{name: "miss-gzip-range", raw: get("/g/ar2", ae, "Range: bytes=0-1\r\n")},
		{name: "miss-plain-range", raw: get("/g/ar3", "Range: bytes=0-1\r\n")},
	} {
		time.Sleep(30 * time.Millisecond)
		head := strings.HasPrefix(s.raw, "HEAD")
		a := roundTrip(t, ngx.Addr, s.raw, head)
		b := roundTrip(t, edge.Addr, s.raw, head)
		for _, h := range []string{"X-Proxy-Cache", "Content-Encoding", "Vary", "Content-Range", "Accept-Ranges", "Content-Type"} {
			if a.Header.Get(h) != b.Header.Get(h) {
				t.Errorf("%s: %s: nginx %q, edgeproxy %q", s.name, h, a.Header.Get(h), b.Header.Get(h))
			}
		}
		if a.Status != b.Status || gunzipIf(t, a) != gunzipIf(t, b) {
			t.Errorf("%s: nginx %d %q, edgeproxy %d %q", s.name, a.Status, gunzipIf(t, a), b.Status, gunzipIf(t, b))
		}
	}
}

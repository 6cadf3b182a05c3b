package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedConf turns the seed "reverse proxy best practices" config (the one
// config/testdata keeps byte for byte) into one that runs here: only
// addresses and paths are replaced, every directive stays.
func seedConf(t *testing.T, backend, docs string) string {
	b, err := os.ReadFile("../config/testdata/reverse-proxy.conf")
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"user www-data;", "",
		"pid /run/nginx.pid;", "",
		"include       mime.types;", "include /etc/nginx/mime.types;",
		"/var/log/nginx/", "{{.Tmp}}/logs/",
		"listen 80 default_server;", "listen 127.0.0.1:{{.Port}} default_server;",
		"listen [::]:80 default_server;", "",
		"listen 443 ssl http2;", "listen 127.0.0.1:{{.Port2}} ssl http2;",
		"/etc/ssl/certs/example.pem", docs+"/ec.crt",
		"/etc/ssl/private/example.key", docs+"/ec.key",
		"/var/cache/nginx", "{{.Tmp}}/cache",
		"127.0.0.1:8000", backend,
		"127.0.0.1:8001", backend,
		"/srv/app", docs,
		"/usr/share/nginx/html", docs+"/html",
	)
	return r.Replace(string(b))
}

// The seed config runs unchanged (addresses and paths aside) under both
// servers, and they answer alike: the HTTP->HTTPS redirect, the proxied app
// with forwarded headers, static files with their cache headers, robots.txt.
func TestSeedConfigDifferential(t *testing.T) {
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "example.com")
	for p, body := range map[string]string{"static/app.css": "body{}\n", "html/50x.html": "oops\n", "media/a.txt": "media\n"} {
		full := filepath.Join(docs, p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := startBackend(t, "app")
	conf := seedConf(t, app.addr, docs)
	ngx, edge := pair(t, conf, docs)
	differential(t, ngx, edge, []dcase{
		{name: "redirect", raw: "GET /login?next=/ HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 301},
	})
	na, ea := tlsAddr(t, ngx), tlsAddr(t, edge)
	cfg := func() *tlsConfig { return newTLSConfig("example.com") }
	for _, path := range []string{"/app/x?q=1", "/static/app.css", "/static/missing.css", "/robots.txt", "/media/a.txt"} {
		req := "GET " + path + " HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: gzip\r\n\r\n"
		a, b := tlsGet(t, na, cfg(), req), tlsGet(t, ea, cfg(), req)
		if a.Err != nil || b.Err != nil {
			t.Fatalf("%s: nginx %v, edgeproxy %v", path, a.Err, b.Err)
		}
		if a.Status != b.Status || normBody([]byte(gunzipIf(t, a.reply))) != normBody([]byte(gunzipIf(t, b.reply))) {
			t.Errorf("%s: nginx %d %q, edgeproxy %d %q", path, a.Status, a.Body, b.Status, b.Body)
		}
		for _, h := range []string{"Strict-Transport-Security", "X-Content-Type-Options", "Cache-Control", "Content-Type", "Content-Encoding"} {
			if a.Header.Get(h) != b.Header.Get(h) {
				t.Errorf("%s %s: nginx %q, edgeproxy %q", path, h, a.Header.Get(h), b.Header.Get(h))
			}
		}
	}
}

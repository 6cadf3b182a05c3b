package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const gzipConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    gzip on;
    gzip_vary on;
    gzip_comp_level 6;
    gzip_min_length 256;
    gzip_proxied any;
    gzip_types text/plain text/css application/json application/javascript;
    gzip_disable "msie6";
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location /text { default_type text/plain; return 200 "TEXTBODY"; }
        location /small { default_type text/plain; return 200 "tiny"; }
        location /off { gzip off; }
    }
}
`

func gunzipIf(t *testing.T, r reply) string {
	if r.Header.Get("Content-Encoding") != "gzip" || len(r.Body) == 0 {
		return string(r.Body)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("bad gzip: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip: %v", err)
	}
	return string(b)
}

// The seed's gzip block: compressed and uncompressed cases, thresholds,
// types, Vary, weak ETag, q-values, msie6 and HTTP/1.0 — same headers and
// same decompressed bodies as nginx.
func TestGzipDifferential(t *testing.T) {
	docs := t.TempDir()
	big := strings.Repeat(`{"id": 12345, "name": "product", "tags": ["a", "b"]}`+"\n", 200) // ~10 KiB JSON
	for name, body := range map[string]string{
		"data.json": big, "app.js": big, "style.css": big, "page.html": strings.Repeat("<p>hello</p>\n", 100),
		"tiny.css": "a{}", "photo.jpg": big, "off/x.json": big, "big.json": strings.Repeat(big, 20),
	} {
		p := filepath.Join(docs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := strings.Replace(gzipConf, `"TEXTBODY"`, `"`+strings.Repeat("text body ", 100)+`"`, 1)
	ngx, edge := pair(t, conf, docs)
	ae := "Accept-Encoding: gzip, deflate, br\r\n"
	cases := []struct{ name, raw string }{
		{"json", get("/data.json", ae)},
		{"js", get("/app.js", ae)},
		{"css", get("/style.css", ae)},
		{"html-always", get("/page.html", ae)},
		{"large-file", get("/big.json", ae)},
		{"below-min-length", get("/tiny.css", ae)},
		{"type-not-listed", get("/photo.jpg", ae)},
		{"no-accept", get("/data.json")},
		{"q0", get("/data.json", "Accept-Encoding: gzip;q=0, deflate\r\n")},
		{"q-positive", get("/data.json", "Accept-Encoding: gzip;q=0.5\r\n")},
		{"identity-only", get("/data.json", "Accept-Encoding: identity\r\n")},
		{"msie6", get("/data.json", ae, "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n")},
		{"msie6-sv1", get("/data.json", ae, "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)\r\n")},
		{"http10", "GET /data.json HTTP/1.0\r\n" + ae + "\r\n"},
		{"return-text", get("/text", ae)},
		{"return-small", get("/small", ae)},
		{"gzip-off-location", get("/off/x.json", ae)},
		{"404-page", get("/nope", ae)},
		{"via-proxied-any", get("/data.json", ae, "Via: 1.1 cdn\r\n")},
		{"head", "HEAD /data.json HTTP/1.1\r\nHost: localhost\r\n" + ae + "\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head := strings.HasPrefix(tc.raw, "HEAD")
			a := roundTrip(t, ngx.Addr, tc.raw, head)
			b := roundTrip(t, edge.Addr, tc.raw, head)
			if a.Err != nil || b.Err != nil {
				t.Fatalf("errors: nginx %v, edgeproxy %v", a.Err, b.Err)
			}
			if a.Status != b.Status {
				t.Errorf("status: nginx %d, edgeproxy %d", a.Status, b.Status)
			}
			for _, h := range []string{"Content-Encoding", "Vary", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges", "Connection"} {
				if av, bv := a.Header.Get(h), b.Header.Get(h); av != bv {
					t.Errorf("%s: nginx %q, edgeproxy %q", h, av, bv)
				}
			}
			// Compressed responses have no Content-Length in either.
			if a.Header.Get("Content-Encoding") == "gzip" && (a.Header.Get("Content-Length") != "" || b.Header.Get("Content-Length") != "") {
				t.Errorf("Content-Length on a gzip response: nginx %q, edgeproxy %q", a.Header.Get("Content-Length"), b.Header.Get("Content-Length"))
			}
			if na, nb := normBody([]byte(gunzipIf(t, a))), normBody([]byte(gunzipIf(t, b))); na != nb {
				t.Errorf("decompressed bodies differ: nginx %d bytes, edgeproxy %d bytes", len(na), len(nb))
			}
			if a.Closed != b.Closed {
				t.Errorf("closed: nginx %v, edgeproxy %v", a.Closed, b.Closed)
			}
		})
	}
}

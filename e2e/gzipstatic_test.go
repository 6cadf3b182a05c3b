package e2e

import (
	"bytes"
	"compress/gzip"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const gzipStaticConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    gzip_vary on;
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location /on/ { gzip_static on; }
        location /always/ { gzip_static always; }
        location /novary/ { gzip_static on; gzip_vary off; }
        location /both/ { gzip_static on; gzip on; gzip_types text/css; gzip_min_length 1; }
        location /big/ { gzip_static on; }
        location /hdrs/ { gzip_static on; expires 1h; add_header X-Test yes; }
        location /http10/ { gzip_static on; gzip_http_version 1.0; }
    }
}
`

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, 9)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// gzip_static on|always against nginx: which file is served, Content-Encoding,
// Vary, Content-Type (of the original), Content-Length/ETag/Last-Modified (of
// the .gz), ranges, 304, HEAD, HTTP/1.0, Via, and a large .gz sent with
// sendfile. Bodies are the .gz bytes exactly, and they decompress to the
// original.
func TestGzipStaticDifferential(t *testing.T) {
	docs := t.TempDir()
	css := []byte(strings.Repeat("body { color: red; }\n", 300))
	rnd := rand.New(rand.NewSource(1))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = "abcdefghij\n"[rnd.Intn(11)]
	}
	files := map[string][]byte{
		"on/a.css": css, "on/a.css.gz": gz(t, css), "on/only.css.gz": gz(t, css), "on/plain.css": css,
		"always/a.css": css, "always/a.css.gz": gz(t, css),
		"novary/a.css": css, "novary/a.css.gz": gz(t, css), "novary/plain.css": css,
		"both/a.css": css, "both/a.css.gz": gz(t, css), "both/plain.css": css,
		"big/big.txt": big, "big/big.txt.gz": gz(t, big),
		"hdrs/a.css": css, "hdrs/a.css.gz": gz(t, css),
		"http10/a.css": css, "http10/a.css.gz": gz(t, css),
		"on/dir.gz/x": css, "on/dir": css,
	}
	for name, body := range files {
		p := filepath.Join(docs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ngx, edge := pair(t, gzipStaticConf, docs)
	ae := "Accept-Encoding: gzip, deflate, br\r\n"
	// The .gz file's ETag, from nginx, for a conditional request.
	etag := roundTrip(t, ngx.Addr, get("/on/a.css", ae), false).Header.Get("ETag")
	cases := []struct{ name, raw string }{
		{"on", get("/on/a.css", ae)},
		{"on-no-accept", get("/on/a.css")},
		{"on-q0", get("/on/a.css", "Accept-Encoding: gzip;q=0\r\n")},
		{"on-only-gz", get("/on/only.css", ae)},
		{"on-only-gz-no-accept", get("/on/only.css")},
		{"on-no-gz-file", get("/on/plain.css", ae)},
		{"on-gz-is-dir", get("/on/dir", ae)},
		{"always", get("/always/a.css", ae)},
		{"always-no-accept", get("/always/a.css")},
		{"novary", get("/novary/a.css", ae)},
		{"novary-no-accept", get("/novary/a.css")},
		{"with-gzip-on", get("/both/a.css", ae)},
		{"with-gzip-on-no-gz-file", get("/both/plain.css", ae)},
		{"big-sendfile", get("/big/big.txt", ae)},
		{"big-no-accept", get("/big/big.txt")},
		{"range", get("/on/a.css", ae, "Range: bytes=0-9\r\n")},
		{"if-none-match", get("/on/a.css", ae, "If-None-Match: "+etag+"\r\n")},
		{"head", "HEAD /on/a.css HTTP/1.1\r\nHost: localhost\r\n" + ae + "\r\n"},
		{"post", "POST /on/a.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n" + ae + "\r\n"},
		{"http10-default", "GET /on/a.css HTTP/1.0\r\n" + ae + "\r\n"},
		{"http10-allowed", "GET /http10/a.css HTTP/1.0\r\n" + ae + "\r\n"},
		{"via", get("/on/a.css", ae, "Via: 1.1 cdn\r\n")},
		{"msie6", get("/on/a.css", ae, "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n")},
		{"expires-add-header", get("/hdrs/a.css", ae)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head := strings.HasPrefix(tc.raw, "HEAD")
			a := roundTrip(t, ngx.Addr, tc.raw, head)
			b := roundTrip(t, edge.Addr, tc.raw, head)
			if a.Err != nil || b.Err != nil {
				t.Fatalf("errors: nginx %v, edgeproxy %v", a.Err, b.Err)
			}
			if b.Header.Get("Content-Encoding") == "gzip" && b.Status == 200 && !head {
				if got := gunzipIf(t, b); got != string(css) && got != string(big) {
					t.Errorf("decompressed body is neither original (%d bytes)", len(got))
				}
			}
			if a.Header.Get("Transfer-Encoding") == "" && a.Header.Get("Content-Encoding") == "gzip" && a.Header.Get("Content-Length") == "" && !head {
				// Compressed on the fly by both: compressors differ, the
				// decompressed bodies must not.
				a.Body, b.Body = []byte(gunzipIf(t, a)), []byte(gunzipIf(t, b))
			}
			if d := diff(a, b, ngx.Port, edge.Port); len(d) > 0 {
				t.Errorf("differs:\n  %s", strings.Join(d, "\n  "))
			}
			for _, h := range []string{"Content-Encoding", "Vary", "Transfer-Encoding"} {
				if av, bv := strings.Join(a.Header.Values(h), ","), strings.Join(b.Header.Values(h), ","); av != bv {
					t.Errorf("%s: nginx %q, edgeproxy %q", h, av, bv)
				}
			}
		})
	}
}

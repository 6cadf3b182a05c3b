package e2e

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

const encodingConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    gzip on;
    gzip_vary on;
    gzip_types application/json text/css;
    brotli on;
    brotli_comp_level 5;
    brotli_types application/json text/css text/plain;
    zstd on;
    zstd_comp_level 3;
    zstd_types application/json text/css text/plain;
    zstd_min_length 100;
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location = /text { default_type text/plain; return 200 "text body text body text body!"; }
        location /app/ { proxy_pass http://APP; }
        location /pre/ { gzip_static on; brotli_static on; zstd_static on; }
        location /brotli-only/ { gzip off; zstd off; }
    }
}
`

// decode undoes Content-Encoding.
func decode(t *testing.T, r reply) string {
	t.Helper()
	var rd io.Reader
	switch r.Header.Get("Content-Encoding") {
	case "":
		return string(r.Body)
	case "gzip":
		return gunzipIf(t, r)
	case "br":
		rd = brotli.NewReader(bytes.NewReader(r.Body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		rd = zr
	default:
		t.Fatalf("unknown Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("bad %s body: %v", r.Header.Get("Content-Encoding"), err)
	}
	return string(b)
}

// brotli and zstd (edgeproxy extensions): the coding follows the client's
// q-values, ties prefer zstd then br then gzip, thresholds and types apply
// per coding, bodies decode to the original (static files, `return`,
// proxied responses), precompressed .br/.zst/.gz files are chosen the same
// way and sent as they are.
func TestBrotliZstd(t *testing.T) {
	app := startBackend(t, "app")
	docs := t.TempDir()
	js := strings.Repeat(`{"id": 12345, "name": "product", "tags": ["a", "b"]}`+"\n", 200)
	files := map[string]string{
		"data.json": js, "tiny.json": `{"a":1}` + strings.Repeat(" ", 40), "photo.jpg": js,
		"pre/a.css": js, "pre/a.css.br": "BROTLI-FILE", "pre/a.css.zst": "ZSTD-FILE", "pre/a.css.gz": "GZIP-FILE",
		"pre/onlybr.css": js, "pre/onlybr.css.br": "BR-ONLY",
		"brotli-only/data.json": js,
	}
	for name, body := range files {
		p := filepath.Join(docs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edge := start(t, "edgeproxy", strings.ReplaceAll(encodingConf, "APP", app.addr), docs)
	cases := []struct {
		name, raw, enc, body string
		vary                 bool
	}{
		{"all-equal-prefers-zstd", get("/data.json", "Accept-Encoding: gzip, deflate, br, zstd\r\n"), "zstd", js, true},
		{"br-and-gzip", get("/data.json", "Accept-Encoding: gzip, br\r\n"), "br", js, true},
		{"q-prefers-gzip", get("/data.json", "Accept-Encoding: br;q=0.5, gzip, zstd;q=0.2\r\n"), "gzip", js, true},
		{"q0-excludes", get("/data.json", "Accept-Encoding: zstd;q=0, br;q=0.1\r\n"), "br", js, true},
		{"identity", get("/data.json", "Accept-Encoding: identity\r\n"), "", js, true},
		{"none", get("/data.json"), "", js, true},
		{"zstd-min-length", get("/tiny.json", "Accept-Encoding: zstd, br\r\n"), "br", files["tiny.json"], true},
		{"type-not-listed", get("/photo.jpg", "Accept-Encoding: zstd, br, gzip\r\n"), "", js, false},
		{"return-text-plain", get("/text", "Accept-Encoding: gzip, br\r\n"), "br", "text body text body text body!", true},
		{"brotli-only-location", get("/brotli-only/data.json", "Accept-Encoding: gzip, zstd, br;q=0.9\r\n"), "br", js, true},
		{"pre-zstd", get("/pre/a.css", "Accept-Encoding: gzip, br, zstd\r\n"), "zstd", "ZSTD-FILE", true},
		{"pre-br", get("/pre/a.css", "Accept-Encoding: gzip, br\r\n"), "br", "BROTLI-FILE", true},
		{"pre-gzip", get("/pre/a.css", "Accept-Encoding: gzip, br;q=0.5\r\n"), "gzip", "GZIP-FILE", true},
		{"pre-none", get("/pre/a.css"), "", js, true},
		{"pre-falls-back-to-on-the-fly", get("/pre/onlybr.css", "Accept-Encoding: zstd\r\n"), "zstd", js, true},
		{"pre-br-only", get("/pre/onlybr.css", "Accept-Encoding: zstd;q=0.5, br\r\n"), "br", "BR-ONLY", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := roundTrip(t, edge.Addr, tc.raw, false)
			if r.Err != nil || r.Status != 200 {
				t.Fatalf("status %d err %v", r.Status, r.Err)
			}
			if got := r.Header.Get("Content-Encoding"); got != tc.enc {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.enc)
			}
			if got := r.Header.Get("Vary") == "Accept-Encoding"; got != tc.vary {
				t.Errorf("Vary %q", r.Header.Get("Vary"))
			}
			precompressed := strings.HasSuffix(tc.body, "-FILE") || strings.HasSuffix(tc.body, "-ONLY")
			body := string(r.Body)
			if !precompressed {
				body = decode(t, r)
			}
			if body != tc.body {
				t.Errorf("body %q..., want %q...", clip(body), clip(tc.body))
			}
			if et := r.Header.Get("ETag"); tc.enc != "" && et != "" && !precompressed && !strings.HasPrefix(et, "W/") {
				t.Errorf("ETag %q not weakened on an encoded response", et)
			}
		})
	}
	// A proxied app response is encoded as it is relayed.
	r := roundTrip(t, edge.Addr, get("/app/x", "Accept-Encoding: br, zstd\r\n"), false)
	if r.Header.Get("Content-Encoding") != "zstd" || !strings.Contains(decode(t, r), "uri=/app/x") {
		t.Errorf("proxied: %q %q", r.Header.Get("Content-Encoding"), clip(decode(t, r)))
	}
	// HEAD: the headers of the encoded response, no body.
	r = roundTrip(t, edge.Addr, "HEAD /data.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n", true)
	if r.Header.Get("Content-Encoding") != "br" || len(r.Body) != 0 {
		t.Errorf("HEAD: %q, %d body bytes", r.Header.Get("Content-Encoding"), len(r.Body))
	}
}

// Invalid values are refused like nginx refuses gzip's.
func TestBrotliZstdConfigErrors(t *testing.T) {
	for _, bad := range []string{"brotli_comp_level 12;", "zstd_comp_level 0;", "brotli_static maybe;", "zstd_min_length x;"} {
		dir := t.TempDir()
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte("events {} http { "+bad+" }\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(edgeBinary(t), "-t", "-p", dir, "-c", conf).CombinedOutput()
		if err == nil || !strings.Contains(string(out), conf+":1") {
			t.Errorf("%s: err %v, output %q", bad, err, out)
		}
	}
}

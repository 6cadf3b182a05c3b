package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeDocs builds a document tree shared by nginx and edgeproxy.
func makeDocs(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, b []byte) {
		full := filepath.Join(d, p)
		must(os.MkdirAll(filepath.Dir(full), 0o755))
		must(os.WriteFile(full, b, 0o644))
		// A fixed mtime keeps Last-Modified and ETag identical for both.
		mt := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		must(os.Chtimes(full, mt, mt))
	}
	write("html/index.html", []byte("<h1>home</h1>\n"))
	write("html/a.txt", bytes.Repeat([]byte("a"), 1024))
	write("html/style.css", []byte("body{}\n"))
	write("html/UPPER.CSS", []byte("body{}\n"))
	write("html/data.unknownext", []byte("x"))
	write("html/big.bin", bytes.Repeat([]byte("0123456789abcdef"), 8192)) // 128 KiB: sendfile path
	write("html/dir/index.html", []byte("dir index\n"))
	must(os.MkdirAll(filepath.Join(d, "html/noindex"), 0o755))
	write("html/50x.html", []byte("<p>custom error</p>\n"))
	write("html/404.html", []byte("<p>custom 404</p>\n"))
	write("media/photo.jpg", []byte("jpegdata"))
	write("html/app/fallback.html", []byte("fallback\n"))
	write("html/assets/app.js", []byte("console.log(1)\n"))
	return d
}

const staticConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:{{.Port}} default_server;
        server_name localhost;
        root {{.Dir}}/html;
        index index.html;
        error_page 404 /404.html;
        add_header X-Test server-level;

        location = /exact { return 200 "exact\n"; }
        location /media/ {
            alias {{.Dir}}/media/;
            expires 30d;
            add_header X-Frame-Options DENY;
        }
        location ~* \.(css|js)$ {
            expires max;
        }
        location /app/ {
            try_files $uri $uri/ /app/fallback.html;
        }
        location /gone { return 410; }
        location /moved { return 301 /dir/; }
        location /ext { return 302 http://example.com/x?y=1; }
        location /text { return 403 "forbidden text $uri $arg_a\n"; }
        location /inner { internal; return 200 "inner\n"; }
        location /err500 { error_page 500 /50x.html; return 500; }
        location = /50x.html { }
        location /epoch { expires epoch; }
        location /neg { expires -1; }
        location /noetag { etag off; }
        location /vars { return 200 "$request_method $uri $args $host $scheme\n"; }
    }
}
`

func TestStaticDifferential(t *testing.T) {
	docs := makeDocs(t)
	ngx, edge := pair(t, staticConf, docs)
	lm := "Wed, 01 May 2024 12:00:00 GMT"
	differential(t, ngx, edge, []dcase{
		{name: "index", raw: get("/"), status: 200},
		{name: "file", raw: get("/a.txt"), status: 200},
		{name: "head", raw: "HEAD /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n", head: true, status: 200},
		{name: "css", raw: get("/style.css"), status: 200},
		{name: "upper-ext", raw: get("/UPPER.CSS"), status: 200},
		{name: "unknown-ext", raw: get("/data.unknownext"), status: 200},
		{name: "big-sendfile", raw: get("/big.bin"), status: 200},
		{name: "big-range", raw: get("/big.bin", "Range: bytes=100-199\r\n"), status: 206},
		{name: "missing", raw: get("/nope.html"), status: 404},
		{name: "dir-redirect", raw: get("/dir"), status: 301},
		{name: "dir-redirect-args", raw: get("/dir?x=1"), status: 301},
		{name: "dir-index", raw: get("/dir/"), status: 200},
		{name: "dir-noindex", raw: get("/noindex/"), status: 403},
		{name: "dir-missing", raw: get("/nodir/"), status: 404},
		{name: "ims-304", raw: get("/a.txt", "If-Modified-Since: "+lm+"\r\n"), status: 304},
		{name: "ims-older", raw: get("/a.txt", "If-Modified-Since: Tue, 30 Apr 2024 12:00:00 GMT\r\n"), status: 200},
		{name: "inm-304", raw: get("/a.txt", "If-None-Match: \"66322ec0-400\"\r\n"), status: 304},
		{name: "inm-star", raw: get("/a.txt", "If-None-Match: *\r\n"), status: 304},
		{name: "inm-other", raw: get("/a.txt", "If-None-Match: \"xyz\"\r\n"), status: 200},
		{name: "range", raw: get("/a.txt", "Range: bytes=0-9\r\n"), status: 206},
		{name: "range-suffix", raw: get("/a.txt", "Range: bytes=-10\r\n"), status: 206},
		{name: "range-open", raw: get("/a.txt", "Range: bytes=1000-\r\n"), status: 206},
		{name: "range-416", raw: get("/a.txt", "Range: bytes=5000-6000\r\n"), status: 416},
		{name: "range-bad", raw: get("/a.txt", "Range: items=1-2\r\n"), status: 200},
		{name: "if-range-match", raw: get("/a.txt", "Range: bytes=0-9\r\nIf-Range: \"66322ec0-400\"\r\n"), status: 206},
		{name: "if-range-miss", raw: get("/a.txt", "Range: bytes=0-9\r\nIf-Range: \"nope\"\r\n"), status: 200},
		{name: "alias-expires", raw: get("/media/photo.jpg"), status: 200},
		{name: "regex-expires-max", raw: get("/assets/app.js"), status: 200},
		{name: "try-files-hit", raw: get("/app/fallback.html"), status: 200},
		{name: "try-files-fallback", raw: get("/app/missing"), status: 200},
		{name: "exact", raw: get("/exact"), status: 200},
		{name: "return-410", raw: get("/gone"), status: 410},
		{name: "return-301-relative", raw: get("/moved"), status: 301},
		{name: "return-302-url", raw: get("/ext"), status: 302},
		{name: "return-text", raw: get("/text?a=b"), status: 403},
		{name: "internal", raw: get("/inner"), status: 404},
		{name: "error-page-500", raw: get("/err500"), status: 500},
		{name: "expires-epoch", raw: get("/epoch"), status: 404},
		{name: "vars", raw: get("/vars?q=1"), status: 200},
		{name: "post-static", raw: "POST /a.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc", status: 405},
		{name: "delete-static", raw: "DELETE /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n", status: 405},
		{name: "http10", raw: "GET /a.txt HTTP/1.0\r\n\r\n", status: 200},
		{name: "http10-keepalive", raw: "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200},
		{name: "conn-close", raw: get("/a.txt", "Connection: close\r\n"), status: 200},
		{name: "dotdot", raw: get("/dir/../a.txt"), status: 200},
		{name: "dotdot-escape", raw: get("/../etc/passwd"), status: 400},
		{name: "percent", raw: get("/%61.txt"), status: 200},
		{name: "double-slash", raw: get("//a.txt"), status: 200},
		{name: "noetag", raw: get("/noetag"), status: 404},
	})
}

// TestLargeFileSendfile checks byte-exact delivery of a 64 MiB file sent with
// sendfile beside gnet, twice, pipelined on one connection.
func TestLargeFileSendfile(t *testing.T) {
	docs := t.TempDir()
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	if err := os.MkdirAll(filepath.Join(docs, "html"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(docs, "html/big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(big)
	edge := start(t, "edgeproxy", staticConf, docs)
	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	req := "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n"
	if _, err := io.WriteString(c, req+req+"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := newReader(c)
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(big)) {
			t.Fatalf("response %d: read %d bytes, err %v", i, n, err)
		}
		if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
			t.Fatalf("response %d: body differs from the file", i)
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("third pipelined response: %v", err)
	}
	// a.txt does not exist in this tree: the custom 404 page doesn't either.
	if resp.StatusCode != 404 {
		t.Fatalf("third response status %d, want 404", resp.StatusCode)
	}
}

func TestPipelinedInOrder(t *testing.T) {
	docs := makeDocs(t)
	edge := start(t, "edgeproxy", staticConf, docs)
	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var sb strings.Builder
	paths := []string{"/exact", "/a.txt", "/big.bin", "/vars?i=1", "/nope", "/exact"}
	for _, p := range paths {
		sb.WriteString(get(p))
	}
	if _, err := io.WriteString(c, sb.String()); err != nil {
		t.Fatal(err)
	}
	br := newReader(c)
	wantStatus := []int{200, 200, 200, 200, 404, 200}
	for i, p := range paths {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus[i] {
			t.Fatalf("%s: status %d, want %d", p, resp.StatusCode, wantStatus[i])
		}
		if p == "/vars?i=1" && !strings.Contains(string(body), "GET /vars i=1") {
			t.Fatalf("%s: body %q", p, body)
		}
	}
}

func TestFileChangeSeen(t *testing.T) {
	docs := makeDocs(t)
	edge := start(t, "edgeproxy", staticConf, docs)
	r1 := roundTrip(t, edge.Addr, get("/a.txt"), false)
	if err := os.WriteFile(filepath.Join(docs, "html/a.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := roundTrip(t, edge.Addr, get("/a.txt"), false)
	if string(r2.Body) != "changed" || r2.Header.Get("ETag") == r1.Header.Get("ETag") {
		t.Fatalf("after a change: body %q etag %q (before %q)", r2.Body, r2.Header.Get("ETag"), r1.Header.Get("ETag"))
	}
	if err := os.Remove(filepath.Join(docs, "html/a.txt")); err != nil {
		t.Fatal(err)
	}
	if r3 := roundTrip(t, edge.Addr, get("/a.txt"), false); r3.Status != 404 {
		t.Fatalf("after removal: %d", r3.Status)
	}
	_ = fmt.Sprint()
}

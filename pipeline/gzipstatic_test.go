package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gzip_static serves the .gz with the original's type, without allocating
// per request.
func TestFeedGzipStatic(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.css"), []byte("body{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.css.gz"), []byte("GZBYTES"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, ft := newTestConn(t, `events {} http { types { text/css css; } gzip_vary on; server { listen 127.0.0.1:8080; root `+dir+`;
		location / { gzip_static on; } } }`)
	req := []byte("GET /a.css HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
	c.Feed(req)
	out := ft.out.String()
	for _, want := range []string{"Content-Type: text/css\r\n", "Content-Encoding: gzip\r\n", "Vary: Accept-Encoding\r\n", "Content-Length: 7\r\n", "\r\n\r\nGZBYTES"} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in\n%s", want, out)
		}
	}
	ft.out.Reset()
	c.Feed([]byte("GET /a.css HTTP/1.1\r\nHost: a\r\n\r\n"))
	if out := ft.out.String(); strings.Contains(out, "Content-Encoding") || !strings.Contains(out, "Vary: Accept-Encoding\r\n") || !strings.HasSuffix(out, "body{}") {
		t.Fatalf("without Accept-Encoding:\n%s", out)
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { ft.out.Reset(); c.Feed(req) }); n != 0 {
		t.Fatalf("%v allocations per gzip_static response", n)
	}
}

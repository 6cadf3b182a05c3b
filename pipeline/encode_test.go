package pipeline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAEQ(t *testing.T) {
	for _, tc := range []struct {
		ae, name string
		q        int
	}{
		{"gzip, br", "br", 1000},
		{"gzip, BR;q=0.5", "br", 500},
		{"br;q=0", "br", 0},
		{"br;q=0.001", "br", 1},
		// nginx's rule (ngx_http_gzip_quantity): malformed means refused.
		{"br;q=0.1234", "br", 0},
		{"br;q=1.5", "br", 0},
		{"br;q=0x", "br", 0},
		{"br;q=", "br", 0},
		{"br;q=1.", "br", 1000},
		{"br ; q=1.0", "br", 1000},
		{"gzip", "br", -1},
		{"*", "zstd", -1},
		{"zstd;level=3;q=0.7", "zstd", 700},
		{"", "zstd", -1},
	} {
		if got := aeQ([]byte(tc.ae), tc.name); got != tc.q {
			t.Errorf("aeQ(%q, %s) = %d, want %d", tc.ae, tc.name, got, tc.q)
		}
	}
}

func FuzzAEQ(f *testing.F) {
	for _, s := range []string{"gzip, br;q=0.5", "zstd;q=0.", ";;,,q=", "br;q=9.9999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ae string) {
		for _, n := range []string{"br", "zstd", "gzip"} {
			if q := aeQ([]byte(ae), n); q < -1 || q > 1000 {
				t.Fatalf("q %d out of range for %q", q, ae)
			}
		}
	})
}

// brotli and zstd on the hot path allocate nothing once their pooled
// encoders and buffers are warm.
func TestFeedBrotliZstdZeroAllocs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), bytes.Repeat([]byte("hello encodings "), 200), 0o644); err != nil {
		t.Fatal(err)
	}
	c, ft := newTestConn(t, `error_log `+dir+`/error.log; events {} http { keepalive_requests 1000000000; default_type text/plain;
		brotli on; brotli_types text/plain; zstd on; zstd_types text/plain; server { listen 127.0.0.1:8080; root `+dir+`; } }`)
	for _, enc := range []string{"br", "zstd"} {
		req := []byte("GET /a.txt HTTP/1.1\r\nHost: a\r\nAccept-Encoding: " + enc + "\r\n\r\n")
		ft.out.Reset()
		c.Feed(req)
		if !strings.Contains(ft.out.String(), "Content-Encoding: "+enc+"\r\n") {
			t.Fatalf("not encoded with %s:\n%.300s", enc, ft.out.String())
		}
		if raceEnabled {
			continue
		}
		if n := testing.AllocsPerRun(50, func() { ft.out.Reset(); c.Feed(req) }); n != 0 {
			t.Errorf("%s: %v allocations per response", enc, n)
		}
	}
}

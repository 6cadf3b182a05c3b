package e2e

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

const streamGzipConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    gzip on;
    gzip_types text/event-stream text/plain;
    gzip_proxied any;
    server {
        listen 127.0.0.1:{{.Port}};
        location /events/ {
            proxy_pass http://APP;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
        location /big/ {
            proxy_pass http://APP;
        }
    }
}
`

// Streamed responses are compressed as they stream: with proxy_buffering
// off the first server-sent event arrives gzipped long before the app
// finishes (nginx flushes its gzip stream on every buffer too), and a
// buffered text body larger than the memory buffers (spilled to a
// temporary file) is gzipped whole. Same in nginx.
func TestStreamedGzipDifferential(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("the quick brown fox jumps over the lazy dog\n", 80000) // 3.5 MB
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/big/") {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, big)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			f.Flush()
			time.Sleep(400 * time.Millisecond)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ngx, edge := pair(t, strings.ReplaceAll(streamGzipConf, "APP", l.Addr().String()), t.TempDir())
	for _, s := range []*server{ngx, edge} {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		io.WriteString(c, "GET /events/x HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: events not gzipped: %v", s.Name, resp.Header)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		line, err := bufio.NewReader(zr).ReadString('\n')
		if err != nil || line != "data: 1\n" {
			t.Fatalf("%s: first line %q %v", s.Name, line, err)
		}
		if first := time.Since(start); first > 600*time.Millisecond {
			t.Errorf("%s: first gzipped event after %v, want it streamed", s.Name, first)
		}
		c.Close()

		req, _ := http.NewRequest("GET", "http://"+s.Addr+"/big/x", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		br, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if br.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: big body not gzipped: %v", s.Name, br.Header)
		}
		zr, err = gzip.NewReader(br.Body)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		got, err := io.ReadAll(zr)
		br.Body.Close()
		if err != nil || string(got) != big {
			t.Errorf("%s: big body decompressed to %d bytes (%v), want %d", s.Name, len(got), err, len(big))
		}
	}
}

// brotli and zstd (edgeproxy extensions) stream the same way: the first
// event decodes before the app has finished.
func TestStreamedBrotliZstd(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			f.Flush()
			time.Sleep(400 * time.Millisecond)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	conf := strings.ReplaceAll(`
worker_processes 1;
events { worker_connections 1024; }
http {
    brotli on; brotli_types text/event-stream;
    zstd on; zstd_types text/event-stream;
    server {
        listen 127.0.0.1:{{.Port}};
        location /events/ { proxy_pass http://APP; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
    }
}
`, "APP", l.Addr().String())
	edge := start(t, "edgeproxy", conf, t.TempDir())
	for _, enc := range []string{"br", "zstd"} {
		c, err := net.Dial("tcp", edge.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		io.WriteString(c, "GET /events/x HTTP/1.1\r\nHost: x\r\nAccept-Encoding: "+enc+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Encoding") != enc {
			t.Fatalf("%s: Content-Encoding %q", enc, resp.Header.Get("Content-Encoding"))
		}
		var r io.Reader
		if enc == "br" {
			r = brotli.NewReader(resp.Body)
		} else {
			zr, err := zstd.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			r = zr
		}
		br := bufio.NewReader(r)
		line, err := br.ReadString('\n')
		if err != nil || line != "data: 1\n" {
			t.Fatalf("%s: first line %q %v", enc, line, err)
		}
		if first := time.Since(start); first > 600*time.Millisecond {
			t.Errorf("%s: first event after %v, want it streamed", enc, first)
		}
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "\ndata: 2\n\ndata: 3\n\n" {
			t.Errorf("%s: rest %q %v", enc, rest, err)
		}
		c.Close()
	}
}

package pipeline

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgeproxy/config"
	"edgeproxy/snapshot"
)

// fakeTransport records what the pipeline writes.
type fakeTransport struct {
	out    bytes.Buffer
	closed bool
	files  int
	wakes  []time.Duration
}

func (f *fakeTransport) Write(bufs [][]byte) {
	for _, b := range bufs {
		f.out.Write(b)
	}
}
func (f *fakeTransport) SendFile(fd *os.File, off, n int64) {
	f.files++
	fd.Close()
}
func (f *fakeTransport) SendStream(r io.Reader) {
	f.files++
	_, _ = io.Copy(&f.out, r)
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}
func (f *fakeTransport) Close()                           { f.closed = true }
func (f *fakeTransport) WakeAfter(d time.Duration)        { f.wakes = append(f.wakes, d) }
func (f *fakeTransport) Tunnel(up net.Conn, early []byte) { up.Close() }

func compile(t testing.TB, conf string) *snapshot.Snapshot {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p, config.Options{Prefix: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	snap, _, err := snapshot.Compile(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func newTestConn(t testing.TB, conf string) (*Conn, *fakeTransport) {
	snap := compile(t, conf)
	ft := &fakeTransport{}
	c := NewConn(ft, snap, snap.Listeners[0], netip.MustParseAddrPort("127.0.0.1:5555"), netip.MustParseAddrPort("127.0.0.1:8080"), false)
	return c, ft
}

func docsConf(t testing.TB) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "small.txt"), []byte("hello small file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return `error_log ` + dir + `/error.log; events {} http { keepalive_requests 1000000000; access_log ` + dir + `/access.log combined; server { listen 127.0.0.1:8080; root ` + dir + `;
		location = /ok { return 200 "ok"; }
		location /h { add_header X-Id $request_id; add_header X-Uri $uri; return 204; }
	} }`
}

func TestFeedReturnAndStatic(t *testing.T) {
	c, ft := newTestConn(t, docsConf(t))
	req := "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n"
	if n := c.Feed([]byte(req)); n != len(req) {
		t.Fatalf("consumed %d of %d", n, len(req))
	}
	out := ft.out.String()
	if strings.Count(out, "HTTP/1.1 200 OK\r\n") != 2 || !strings.Contains(out, "\r\n\r\nok") || !strings.HasSuffix(out, "hello small file\n") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

func TestFeedPartialHead(t *testing.T) {
	c, ft := newTestConn(t, docsConf(t))
	req := []byte("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	if n := c.Feed(req[:10]); n != 0 {
		t.Fatalf("consumed %d of an incomplete head", n)
	}
	if ft.out.Len() != 0 {
		t.Fatal("answered an incomplete request")
	}
	if n := c.Feed(req); n != len(req) {
		t.Fatalf("consumed %d", n)
	}
	if !strings.HasPrefix(ft.out.String(), "HTTP/1.1 200 OK\r\n") {
		t.Fatal(ft.out.String())
	}
}

func TestFeedBadRequestCloses(t *testing.T) {
	c, ft := newTestConn(t, docsConf(t))
	c.Feed([]byte("GET /ok HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n"))
	if !strings.HasPrefix(ft.out.String(), "HTTP/1.1 400 Bad Request\r\n") || !ft.closed {
		t.Fatalf("closed=%v output:\n%s", ft.closed, ft.out.String())
	}
	if strings.Count(ft.out.String(), "HTTP/1.1") != 1 {
		t.Fatal("served a request after a bad one")
	}
}

func TestFeedDiscardsBody(t *testing.T) {
	c, ft := newTestConn(t, docsConf(t))
	req := "POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
	c.Feed([]byte(req))
	if strings.Count(ft.out.String(), "HTTP/1.1 200 OK") != 2 {
		t.Fatalf("output:\n%s", ft.out.String())
	}
}

func TestAddHeaderVariables(t *testing.T) {
	c, ft := newTestConn(t, docsConf(t))
	c.Feed([]byte("GET /h/x HTTP/1.1\r\nHost: a\r\n\r\n"))
	out := ft.out.String()
	if !strings.HasPrefix(out, "HTTP/1.1 204 No Content\r\n") || !strings.Contains(out, "X-Uri: /h/x\r\n") || !strings.Contains(out, "X-Id: ") {
		t.Fatal(out)
	}
}

// The hot path allocates nothing per request in steady state.
func TestFeedZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race (sync.Pool drops objects)")
	}
	c, ft := newTestConn(t, docsConf(t))
	for _, path := range []string{"/ok", "/small.txt", "/missing", "/h/x"} {
		req := []byte("GET " + path + " HTTP/1.1\r\nHost: a\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n")
		c.Feed(req) // warm the file cache and buffers
		allocs := testing.AllocsPerRun(200, func() {
			ft.out.Reset()
			c.Feed(req)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request", path, allocs)
		}
	}
}

func BenchmarkFeedReturn(b *testing.B) {
	c, ft := newTestConn(b, docsConf(b))
	req := []byte("GET /ok HTTP/1.1\r\nHost: a\r\nUser-Agent: wrk\r\n\r\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ft.out.Reset()
		c.Feed(req)
	}
	if !bytes.HasPrefix(ft.out.Bytes(), []byte("HTTP/1.1 200 OK")) {
		b.Fatalf("unexpected output %q", ft.out.Bytes())
	}
}

func BenchmarkFeedStaticSmall(b *testing.B) {
	c, ft := newTestConn(b, docsConf(b))
	req := []byte("GET /small.txt HTTP/1.1\r\nHost: a\r\nUser-Agent: wrk\r\n\r\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ft.out.Reset()
		c.Feed(req)
	}
	if !bytes.HasPrefix(ft.out.Bytes(), []byte("HTTP/1.1 200 OK")) {
		b.Fatalf("unexpected output %q", ft.out.Bytes())
	}
}

// gzip on the hot path allocates nothing either.
func TestFeedGzipZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), bytes.Repeat([]byte("hello gzip "), 200), 0o644); err != nil {
		t.Fatal(err)
	}
	c, ft := newTestConn(t, `error_log `+dir+`/error.log; events {} http { keepalive_requests 1000000000; default_type Text/Plain;
		gzip on; gzip_types text/plain; server { listen 127.0.0.1:8080; root `+dir+`; } }`)
	req := []byte("GET /a.txt HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
	c.Feed(req)
	if !strings.Contains(ft.out.String(), "Content-Encoding: gzip") {
		t.Fatalf("not compressed:\n%s", ft.out.String())
	}
	if n := testing.AllocsPerRun(100, func() { ft.out.Reset(); c.Feed(req) }); n != 0 {
		t.Fatalf("%v allocations per gzipped response", n)
	}
}

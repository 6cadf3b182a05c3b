package static

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func fixtureFile(tb testing.TB, size int) (*Cache, []byte) {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "f.css")
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		tb.Fatal(err)
	}
	c := &Cache{}
	if _, err := c.Open([]byte(p)); err != nil {
		tb.Fatal(err)
	}
	return c, []byte(p)
}

// TestZeroAllocs proves the per-request functions do not allocate in
// steady state.
func TestZeroAllocs(t *testing.T) {
	c, p := fixtureFile(t, 1024)
	missing := []byte(filepath.Join(filepath.Dir(string(p)), "missing"))
	f, _ := c.Open(p)
	types := DefaultTypes()
	exp, _ := ParseExpires([]string{"modified", "+1h"})
	daily, _ := ParseExpires([]string{"@15h"})
	now := time.Now()
	buf := make([]byte, 0, 1024)
	rbuf := make([]Range, 0, 8)
	mp := Multipart{Boundary: 1, ContentType: []byte("text/css"), Size: f.Size}
	inm := append([]byte(`"x", W/`), f.ETag...)
	for name, fn := range map[string]func(){
		"Open hit":       func() { c.Open(p) },
		"Open miss 404":  func() { c.Open(missing) },
		"Status":         func() { Status(os.ErrNotExist) },
		"Lookup":         func() { types.Lookup([]byte("/a/B.CSS")) },
		"Conditional":    func() { Conditional(f, f.LastModified, inm, nil, f.LastModified, IMSExact, true) },
		"IfRange":        func() { IfRange(f, f.LastModified, true) },
		"ParseRange":     func() { ParseRange([]byte("bytes=0-1, 5-9,-3"), f.Size, rbuf) },
		"ParseHTTPTime":  func() { ParseHTTPTime([]byte("Sunday, 06-Nov-94 08:49:37 GMT")) },
		"Expires":        func() { exp.AppendHeaders(buf[:0], now, f.ModTime) },
		"Expires daily":  func() { daily.AppendHeaders(buf[:0], now, f.ModTime) },
		"FileHeaders":    func() { AppendFileHeaders(buf[:0], f, true) },
		"ContentRange":   func() { AppendContentRange(buf[:0], Range{1, 5}, f.Size) },
		"Multipart":      func() { mp.AppendPartHeader(mp.AppendContentType(buf[:0]), Range{1, 5}) },
		"MultipartLen":   func() { mp.ContentLength(rbuf[:2]) },
		"Unsatisfied":    func() { AppendUnsatisfiedRange(buf[:0], f.Size) },
		"AppendHTTPTime": func() { AppendHTTPTime(buf[:0], now.Unix()) },
	} {
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s: %v allocs/op", name, n)
		}
	}
}

func BenchmarkCacheOpenHit(b *testing.B) {
	c, p := fixtureFile(b, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheOpenHitParallel(b *testing.B) {
	c, p := fixtureFile(b, 1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Open(p)
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	t := DefaultTypes()
	p := []byte("/static/css/Site.CSS")
	b.ReportAllocs()
	for b.Loop() {
		t.Lookup(p)
	}
}

func BenchmarkConditional(b *testing.B) {
	c, p := fixtureFile(b, 1024)
	f, _ := c.Open(p)
	inm := append([]byte(`"a", "b", `), f.ETag...)
	b.ReportAllocs()
	for b.Loop() {
		Conditional(f, f.LastModified, inm, nil, nil, IMSExact, true)
	}
}

func BenchmarkParseRange(b *testing.B) {
	h := []byte("bytes=0-499, 1000-1499, -200")
	r := make([]Range, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		r, _ = ParseRange(h, 100000, r)
	}
}

func BenchmarkExpiresAppend(b *testing.B) {
	e, _ := ParseExpires([]string{"1h"})
	buf := make([]byte, 0, 256)
	now, mt := time.Now(), time.Now().Add(-time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendHeaders(buf[:0], now, mt)
	}
}

func BenchmarkAppendFileHeaders(b *testing.B) {
	c, p := fixtureFile(b, 1024)
	f, _ := c.Open(p)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFileHeaders(buf[:0], f, true)
	}
}

// BenchmarkStatSyscall measures the bare newfstatat that dominates
// BenchmarkCacheOpenHit, to separate kernel cost from cache overhead.
func BenchmarkStatSyscall(b *testing.B) {
	_, p := fixtureFile(b, 1024)
	cp := append(p, 0)
	b.ReportAllocs()
	for b.Loop() {
		statPath(cp)
	}
}

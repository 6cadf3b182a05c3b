package static

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{syscall.ENOENT, 404},
		{syscall.ENOTDIR, 404},
		{syscall.ENAMETOOLONG, 404},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, 403},
		{syscall.EACCES, 403},
		{syscall.ELOOP, 403},
		{syscall.EMLINK, 403},
		{ErrNotRegular, 404},
		{ErrInvalidPath, 404},
		{syscall.EIO, 500},
		{ErrChanged, 500},
	} {
		if got := Status(c.err); got != c.want {
			t.Errorf("Status(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestCacheOpenAndChange(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1600000000, 123456789)
	os.Chtimes(p, mt, mt)
	var c Cache
	f, err := c.Open([]byte(p))
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Data) != "hello" || f.Size != 5 || f.IsDir || !f.ModTime.Equal(mt) {
		t.Fatalf("got %+v", f)
	}
	if string(f.ETag) != `"5f5e1000-5"` || string(f.LastModified) != "Sun, 13 Sep 2020 12:26:40 GMT" {
		t.Fatalf("validators %s %s", f.ETag, f.LastModified)
	}
	if f2, _ := c.Open([]byte(p)); f2 != f {
		t.Fatal("unchanged file not served from cache")
	}
	// Same size, same second, different nanoseconds: must reload.
	os.WriteFile(p, []byte("HELLO"), 0o644)
	mt2 := mt.Add(time.Millisecond)
	os.Chtimes(p, mt2, mt2)
	f3, err := c.Open([]byte(p))
	if err != nil || string(f3.Data) != "HELLO" || string(f3.ETag) != string(f.ETag) {
		t.Fatalf("after change: %v %q %s", err, f3.Data, f3.ETag)
	}
	if string(f.Data) != "hello" {
		t.Fatal("old File mutated")
	}
	// Atomic replace (new inode) with identical metadata.
	tmp := filepath.Join(dir, "tmp")
	os.WriteFile(tmp, []byte("xxxxx"), 0o644)
	os.Chtimes(tmp, mt2, mt2)
	os.Rename(tmp, p)
	if f4, _ := c.Open([]byte(p)); string(f4.Data) != "xxxxx" {
		t.Fatalf("rename not detected: %q", f4.Data)
	}
	os.Remove(p)
	if _, err := c.Open([]byte(p)); Status(err) != 404 {
		t.Fatalf("deleted: %v", err)
	}
	if c.Len() != 0 {
		t.Fatalf("deleted entry still cached")
	}
	if _, err := c.Open([]byte(p + "\x00x")); Status(err) != 404 {
		t.Fatalf("NUL: %v", err)
	}
	if _, err := c.Open(nil); Status(err) != 404 {
		t.Fatalf("empty: %v", err)
	}
}

func TestCacheLargeAndOpenFD(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big")
	data := make([]byte, 70<<10)
	for i := range data {
		data[i] = byte(i)
	}
	os.WriteFile(p, data, 0o644)
	c := &Cache{SmallFileMax: 64 << 10}
	f, err := c.Open([]byte(p))
	if err != nil || f.Data != nil || f.Size != int64(len(data)) {
		t.Fatalf("%v %v", err, f)
	}
	fd, err := f.OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	fd.ReadAt(b, 1000)
	fd.Close()
	if string(b) != string(data[1000:1010]) {
		t.Fatal("content mismatch")
	}
	os.WriteFile(p, data[:100], 0o644)
	if _, err := f.OpenFD(); err != ErrChanged {
		t.Fatalf("OpenFD after truncate: %v", err)
	}
	if f2, _ := c.Open([]byte(p)); f2.Size != 100 || len(f2.Data) != 100 {
		t.Fatalf("reload: %+v", f2)
	}
}

func TestCacheBounded(t *testing.T) {
	dir := t.TempDir()
	c := &Cache{MaxEntries: 128, MaxDataBytes: 64 * 1024}
	for i := 0; i < 1000; i++ {
		p := filepath.Join(dir, fmt.Sprint(i))
		os.WriteFile(p, make([]byte, 1024), 0o644)
		if _, err := c.Open([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	n := c.Len()
	var data int64
	for i := range c.shards {
		data += c.shards[i].dataBytes
	}
	// Per-shard bounds are rounded up: 64 shards x ceil(128/64) entries.
	if n > 128 || data > 64*1024+64*1024 {
		t.Fatalf("cache grew to %d entries, %d data bytes", n, data)
	}
}

func TestCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	var paths [][]byte
	for i := 0; i < 8; i++ {
		p := filepath.Join(dir, fmt.Sprint(i))
		os.WriteFile(p, []byte(fmt.Sprint("v0-", i)), 0o644)
		paths = append(paths, []byte(p))
	}
	c := &Cache{MaxEntries: 4}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				p := paths[(g+i)%len(paths)]
				f, err := c.Open(p)
				if err != nil {
					t.Error(err)
					return
				}
				if int64(len(f.Data)) != f.Size {
					t.Errorf("inconsistent File: size %d data %d", f.Size, len(f.Data))
					return
				}
				if g == 0 && i%50 == 0 {
					os.WriteFile(string(p), []byte(fmt.Sprint("v", i, "-changed")), 0o644)
				}
			}
		}()
	}
	wg.Wait()
}

func TestCacheDirAndSpecial(t *testing.T) {
	dir := t.TempDir()
	var c Cache
	f, err := c.Open([]byte(dir))
	if err != nil || !f.IsDir || f.Data != nil {
		t.Fatalf("dir: %v %+v", err, f)
	}
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o644)
	if _, err := c.Open([]byte(fifo)); Status(err) != 404 {
		t.Fatalf("fifo: %v", err)
	}
	longp := []byte(dir + "/")
	for i := 0; i < 2000; i++ {
		longp = append(longp, 'a')
	}
	if _, err := c.Open(longp); Status(err) != 404 {
		t.Fatalf("long name: %v", err)
	}
}

func TestTypes(t *testing.T) {
	d := DefaultTypes()
	for _, c := range []struct{ path, want string }{
		{"/a/b.css", "text/css"},
		{"/a/b.CSS", "text/css"},
		{"/x.JpEg", "image/jpeg"},
		{"/x.tar.gz", ""},
		{"/dir.js/file", ""},
		{"/.css", ""},
		{"/a/.css", ""},
		{"/a/.hidden.css", "text/css"},
		{"/file.", ""},
		{"a.js", ""}, // a dot at index 1 is never considered (i > 1)
		{"/ab.js", "application/javascript"},
		{"/x.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"/x." + string(make([]byte, 100)), ""},
	} {
		if got := string(d.Lookup([]byte(c.path))); got != c.want {
			t.Errorf("Lookup(%q) = %q, want %q", c.path, got, c.want)
		}
	}
	b := BuiltinTypes()
	if b.Len() != 3 || string(b.Lookup([]byte("/a.jpg"))) != "image/jpeg" || b.Lookup([]byte("/a.jpeg")) != nil {
		t.Error("builtin types")
	}
	n := NewTypes()
	n.Add("a/b", "X")
	n.Add("c/d", "x") // duplicate: later wins, like nginx
	if string(n.Lookup([]byte("/f.x"))) != "c/d" {
		t.Error("duplicate extension")
	}
	if _, err := ParseMimeTypes("types { text/html html; "); err == nil {
		t.Error("expected error")
	}
	if _, err := ParseMimeTypes("types { text/html; }"); err == nil {
		t.Error("expected error")
	}
}

// TestDefaultTypesMatchSystem checks the embedded copy against the
// mime.types nginx ships on this machine.
func TestDefaultTypesMatchSystem(t *testing.T) {
	src, err := os.ReadFile("/etc/nginx/mime.types")
	if err != nil {
		t.Skip("no /etc/nginx/mime.types")
	}
	sys, err := ParseMimeTypes(string(src))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultTypes()
	if sys.Len() != d.Len() || sys.Len() < 100 {
		t.Fatalf("len %d vs %d", sys.Len(), d.Len())
	}
	for ext, v := range sys.m {
		if string(d.m[ext]) != string(v) {
			t.Errorf("%s: %s vs %s", ext, d.m[ext], v)
		}
	}
}

func TestParseHTTPTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
		{"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
		{"Sun Nov  6 08:49:37 1994", 784111777},
		{"Sun Nov 06 08:49:37 1994", 784111777},
		{"Sun, 06 Nov 1994 08:49:37", 784111777}, // zone not checked
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0},
		{"Thu, 29 Feb 2024 00:00:00 GMT", 1709164800},
		{"Thu, 29 Feb 2023 00:00:00 GMT", -1},
		{"Sun, 06 Nov 1994 24:49:37 GMT", -1},
		{"Sun, 31 Nov 1994 08:49:37 GMT", -1},
		{"garbage", -1},
		{"", -1},
		{"Sun, 06 Xyz 1994 08:49:37 GMT", -1},
	} {
		if got := ParseHTTPTime([]byte(c.in)); got != c.want {
			t.Errorf("ParseHTTPTime(%q) = %d, want %d", c.in, got, c.want)
		}
	}
	for _, s := range []int64{0, 784111777, 1709164800, 4102444800} {
		if got := ParseHTTPTime(AppendHTTPTime(nil, s)); got != s {
			t.Errorf("round trip %d: %d", s, got)
		}
	}
}

func TestConditionalUnits(t *testing.T) {
	f := newFile("/x", statInfo{size: 10, mtimeNs: 1e18, mode: 0o100644}, nil)
	lm := f.LastModified
	cases := []struct {
		ims, inm, im, ius string
		mode              IMSMode
		etag              bool
		want              int
	}{
		{inm: string(f.ETag), etag: true, want: 304},
		{inm: string(f.ETag), etag: false, want: 0},
		{inm: "*", etag: false, want: 304},
		{inm: ` "a" ,` + string(f.ETag), etag: true, want: 304},
		{inm: `"a", ` + string(f.ETag) + "\t", etag: true, want: 304},
		{inm: `"a" x` + string(f.ETag), etag: true, want: 0},
		{ims: string(lm), etag: true, want: 304},
		{ims: string(lm), mode: IMSOff, etag: true, want: 0},
		{im: "*", ius: string(lm), inm: "*", etag: true, want: 304},
		{im: "", etag: true, want: 412},
		{ius: "", etag: true, want: 412},
	}
	nb := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	for i, c := range cases {
		im := nb(c.im)
		if i == 9 {
			im = []byte{}
		}
		ius := nb(c.ius)
		if i == 10 {
			ius = []byte{}
		}
		if got := Conditional(f, nb(c.ims), nb(c.inm), im, ius, c.mode, c.etag); got != c.want {
			t.Errorf("case %d %+v: got %d", i, c, got)
		}
	}
}

func TestParseRangeUnits(t *testing.T) {
	for _, c := range []struct {
		h      string
		size   int64
		want   []Range
		status int
	}{
		{"bytes=0-499", 1000, []Range{{0, 500}}, 206},
		{"bytes=-500", 1000, []Range{{500, 1000}}, 206},
		{"bytes=-5000", 1000, []Range{{0, 1000}}, 206},
		{"bytes=500-", 1000, []Range{{500, 1000}}, 206},
		{"bytes=500-99999", 1000, []Range{{500, 1000}}, 206},
		{"bytes=1000-", 1000, nil, 416},
		{"bytes=0-", 0, nil, 200},
		{"bytes=-0", 1000, nil, 416},
		{"bytes=0-1,3-4", 1000, []Range{{0, 2}, {3, 5}}, 206},
		{"bytes=0-999,0-999", 1000, nil, 200},
		{"bytes=0-1\x00garbage", 1000, []Range{{0, 2}}, 206},
		{"bytes=9223372036854775807-", 1000, nil, 416},
		{"bytes=9223372036854775808-", 1000, nil, 416},
		{"bytes=0-9223372036854775807", 1000, []Range{{0, 1000}}, 206},
		{"bytes=--1", 1000, nil, 416},
		{"bytes", 1000, nil, 200},
		{"bytes=", 1000, nil, 200},
	} {
		got, st := ParseRange([]byte(c.h), c.size, nil)
		if st != c.status || len(got) != len(c.want) {
			t.Errorf("ParseRange(%q,%d) = %v %d, want %v %d", c.h, c.size, got, st, c.want, c.status)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("ParseRange(%q) = %v, want %v", c.h, got, c.want)
			}
		}
	}
	if _, st := ParseRangeLimit([]byte("bytes=0-1,3-4"), 100, 1, nil); st != 200 {
		t.Errorf("max_ranges 1: %d", st)
	}
	if _, st := ParseRangeLimit([]byte("bytes=0-1"), 100, 0, nil); st != 200 {
		t.Errorf("max_ranges 0: %d", st)
	}
	if s := string(AppendContentRange(nil, Range{0, 10}, 100)); s != "bytes 0-9/100" {
		t.Error(s)
	}
	if s := string(AppendUnsatisfiedRange(nil, 100)); s != "bytes */100" {
		t.Error(s)
	}
}

func TestExpires(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	mt := now.Add(-2 * time.Hour)
	utc := func(e Expires) Expires { e.Loc = time.UTC; return e }
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"off"}, ""},
		{[]string{"epoch"}, "Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\nCache-Control: no-cache\r\n"},
		{[]string{"max"}, "Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\nCache-Control: max-age=315360000\r\n"},
		{[]string{"0"}, "Expires: Mon, 06 May 2024 07:08:09 GMT\r\nCache-Control: max-age=0\r\n"},
		{[]string{"1h"}, "Expires: Mon, 06 May 2024 08:08:09 GMT\r\nCache-Control: max-age=3600\r\n"},
		{[]string{"-1"}, "Expires: Mon, 06 May 2024 07:08:08 GMT\r\nCache-Control: no-cache\r\n"},
		{[]string{"modified", "+3h"}, "Expires: Mon, 06 May 2024 08:08:09 GMT\r\nCache-Control: max-age=3600\r\n"},
		{[]string{"modified", "1h"}, "Expires: Mon, 06 May 2024 06:08:09 GMT\r\nCache-Control: no-cache\r\n"},
		{[]string{"@15h30m"}, "Expires: Mon, 06 May 2024 15:30:00 GMT\r\nCache-Control: max-age=30111\r\n"},
		{[]string{"@7h"}, "Expires: Tue, 07 May 2024 07:00:00 GMT\r\nCache-Control: max-age=85911\r\n"},
		{[]string{"1 2"}, "Expires: Mon, 06 May 2024 07:08:12 GMT\r\nCache-Control: max-age=3\r\n"},
	} {
		e, err := ParseExpires(c.args)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if got := string(utc(e).AppendHeaders(nil, now, mt)); got != c.want {
			t.Errorf("%v: got %q want %q", c.args, got, c.want)
		}
	}
	for _, bad := range [][]string{{"1ms"}, {"30m1h"}, {"@25h"}, {"modified", "@1h"}, {"modified", "epoch"},
		{"x"}, {""}, {"@"}, {"1h1h"}, {"99999999999999999999"}, {"a", "b"}, {}, {"1", "2", "3"}} {
		if _, err := ParseExpires(bad); err == nil {
			t.Errorf("ParseExpires(%q) accepted", bad)
		}
	}
	e, _ := ParseExpires([]string{"1h"})
	if !e.AppliesTo(304) || !e.AppliesTo(200) || e.AppliesTo(404) || e.AppliesTo(412) || (Expires{}).AppliesTo(200) {
		t.Error("AppliesTo")
	}
}

func TestMultipartLength(t *testing.T) {
	m := Multipart{Boundary: 7, ContentType: []byte("text/css; charset=utf-8"), Size: 123456}
	rs := []Range{{0, 1}, {100, 2000}, {123000, 123456}}
	var body []byte
	for _, r := range rs {
		body = m.AppendPartHeader(body, r)
		body = append(body, make([]byte, r.Len())...)
	}
	body = m.AppendTrailer(body)
	if int64(len(body)) != m.ContentLength(rs) {
		t.Fatalf("ContentLength %d, body %d", m.ContentLength(rs), len(body))
	}
	if s := string(m.AppendContentType(nil)); s != "multipart/byteranges; boundary=00000000000000000007" {
		t.Fatal(s)
	}
}

func TestCacheFileReplacedByFIFO(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("x"), 0o644)
	var c Cache
	if _, err := c.Open([]byte(p)); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	syscall.Mkfifo(p, 0o644)
	done := make(chan error, 1)
	go func() { _, err := c.Open([]byte(p)); done <- err }()
	select {
	case err := <-done:
		if Status(err) != 404 {
			t.Fatalf("fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open blocked on a FIFO")
	}
}

package static

import (
	"strings"
	"testing"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"bytes=0-499", "bytes=-500", "bytes=500-", "bytes=0-0,-1", "bytes=0-1,3-4,8-",
		"bytes=--1", "bytes=-", "bytes=1-2-3", "bytes= 1 - 2 ,  3-4 ", "BYTES=0-1",
		"bytes=99999999999999999999-", "bytes=0-99999999999999999999",
		"bytes=9223372036854775807-9223372036854775807", "bytes=-9223372036854775808",
		"bytes=0-\x00", "bytes=,", "bytes=0-1,", "bytes=" + strings.Repeat("0-1,", 5000),
		"bytes=" + strings.Repeat("-1,", 3000), "bytes=5-1", "items=0-1",
	} {
		f.Add(s, int64(10000))
		f.Add(s, int64(0))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
			if size < 0 {
				size = 0
			}
		}
		rs, st := ParseRange([]byte(h), size, nil)
		switch st {
		case 200, 416:
			if len(rs) != 0 {
				t.Fatalf("status %d with ranges %v", st, rs)
			}
		case 206:
			if len(rs) == 0 {
				t.Fatal("206 without ranges")
			}
			var total int64
			for _, r := range rs {
				if r.Start < 0 || r.Start >= r.End || r.End > size {
					t.Fatalf("bad range %v for size %d", r, size)
				}
				total += r.Len()
				var buf [64]byte
				if cr := AppendContentRange(buf[:0], r, size); len(cr) < 11 {
					t.Fatalf("content-range %q", cr)
				}
			}
			if total > size {
				t.Fatalf("total %d > size %d", total, size)
			}
			m := Multipart{Boundary: 1, Size: size}
			if m.ContentLength(rs) < total {
				t.Fatal("multipart length too small")
			}
		default:
			t.Fatalf("status %d", st)
		}
	})
}

func FuzzParseHTTPTime(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Sun, 29 Feb 2000 00:00:00 GMT", ",", " ", "Sun, 06 Nov 1994 08:49:3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := ParseHTTPTime([]byte(s))
		if v != -1 {
			// Anything accepted must round-trip through the canonical form
			// when it is within the IMF-fixdate range.
			if v >= 0 && v < 253402300800 {
				if got := ParseHTTPTime(AppendHTTPTime(nil, v)); got != v {
					t.Fatalf("%q -> %d -> %d", s, v, got)
				}
			}
		}
	})
}

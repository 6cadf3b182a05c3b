package http1

import (
	"bytes"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	browserReq,
	"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
	"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", // wrk
	"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
	"GET /a/%2e%2e/b%2F..%2F/./c//d?x=1#f HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET http://Ex.com:80/p?q HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\rHost: h\r\n\r\n",
	"GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\nHost: h\n\n",
	"\r\n\r\nGET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
	"GET /x\r\n",
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		small := &Limits{HeaderBufferSize: 64, LargeBufferSize: 256, LargeBuffers: 3}
		for _, lim := range []*Limits{nil, small} {
			var whole Request
			n, err := whole.Parse(data, lim)
			if err == nil {
				checkAccepted(t, &whole, data, n)
			} else if err != ErrNeedMore {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error of type %T", err)
				}
			}
			// Split feeding: a prefix, then the whole input, on one Request.
			k := int(cut)
			if k > len(data) {
				k = len(data)
			}
			var split Request
			pn, perr := split.Parse(append([]byte(nil), data[:k]...), lim)
			if perr != ErrNeedMore {
				if err == nil && n > k {
					t.Fatalf("prefix %d of an accepted head: %d %v", k, pn, perr)
				}
				continue
			}
			n2, err2 := split.Parse(data, lim)
			if n2 != n || err2 != err {
				t.Fatalf("split at %d: (%d, %v), whole: (%d, %v)", k, n2, err2, n, err)
			}
			if err == nil && !sameRequest(&whole, &split) {
				t.Fatalf("split at %d gives a different request", k)
			}
		}
	})
}

func checkAccepted(t *testing.T, r *Request, data []byte, n int) {
	if n <= 0 || n > len(data) || !bytes.Equal(r.HeadBytes(), data[:n]) {
		t.Fatalf("n=%d", n)
	}
	p := r.Path()
	if len(p) == 0 || p[0] != '/' {
		t.Fatalf("Path %q does not start with /", p)
	}
	if bytes.Contains(p, []byte("/../")) || bytes.Contains(p, []byte("//")) || bytes.HasSuffix(p, []byte("/..")) {
		t.Fatalf("Path %q not normalised", p)
	}
	if bytes.IndexByte(p, 0) >= 0 {
		t.Fatalf("Path %q has NUL", p)
	}
	if !bytes.Contains(data[:n], r.URI()) || !bytes.Contains(data[:n], r.Method()) {
		t.Fatal("URI/Method not from the head")
	}
	if r.Chunked() && r.ContentLength() != -1 {
		t.Fatal("chunked with Content-Length")
	}
	if r.ContentLength() < -1 {
		t.Fatal("negative Content-Length")
	}
	if maj, _ := r.Proto(); maj != 1 {
		t.Fatalf("major %d", maj)
	}
	if maj, min := r.Proto(); (maj == 1 && min >= 1) && r.Host() == nil {
		t.Fatal("HTTP/1.1 without host")
	}
	if h := r.Host(); bytes.ContainsAny(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t.Fatalf("Host %q not lowercase", h)
	}
	for i := 0; i < r.NumHeaders(); i++ {
		name, _ := r.HeaderAt(i)
		first := -1
		for j := 0; j < r.NumHeaders(); j++ {
			if nj, _ := r.HeaderAt(j); bytes.EqualFold(nj, name) {
				first = j
				break
			}
		}
		_, want := r.HeaderAt(first)
		if got := r.Header(name); !bytes.Equal(got, want) {
			t.Fatalf("Header(%q) = %q, want %q", name, got, want)
		}
		if bytes.ContainsAny(name, ": \t\r\n") {
			t.Fatalf("header name %q", name)
		}
	}
	// Rebase onto a copy: same answers.
	cp := append([]byte(nil), data...)
	var before = describe(r)
	r.Rebase(cp)
	if describe(r) != before {
		t.Fatal("Rebase changed the request")
	}
}

func describe(r *Request) string {
	var b strings.Builder
	a, _ := r.Arg([]byte("a"))
	for _, s := range [][]byte{r.Method(), r.URI(), r.Path(), r.Args(), a, r.Host(), r.HostPort(), r.Upgrade()} {
		b.Write(s)
		b.WriteByte('|')
	}
	r.VisitHeaders(func(n, v []byte) bool { b.Write(n); b.WriteByte(':'); b.Write(v); b.WriteByte('|'); return true })
	maj, min := r.Proto()
	b.WriteString(itoa(maj) + itoa(min) + itoa(int(r.ContentLength())))
	for _, f := range []bool{r.Chunked(), r.KeepAlive(), r.Expect100(), r.PathChanged()} {
		if f {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}

func sameRequest(a, b *Request) bool { return describe(a) == describe(b) }

func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=\"q\"\r\nhello\r\n0;x\r\nTrailer: v\r\n\r\nNEXT",
		"0x5\r\nhello\r\n0\r\n\r\n",
		"5\nhello\n0\n\n",
		"fffffffffffffffffffff\r\n",
		"7fffffffffffffff\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"5\r\nhel\rlo\r\n0\r\n\r\n",
		"5\x00\r\nhello\r\n0\r\n\r\n",
		"A\r\n0123456789\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, enc []byte, step uint8) {
		d1, e1, done1, rest1 := decodeAll(enc, len(enc)+1)
		d2, e2, done2, rest2 := decodeAll(enc, int(step)%17+1)
		if !bytes.Equal(d1, d2) || e1 != e2 || done1 != done2 || rest1 != rest2 {
			t.Fatalf("whole: %q %v %v %d; split %d: %q %v %v %d", d1, e1, done1, rest1, step, d2, e2, done2, rest2)
		}
	})
}

// decodeAll feeds enc in pieces of step bytes and collects the body.
func decodeAll(enc []byte, step int) (body []byte, err error, done bool, rest int) {
	var d ChunkedDecoder
	var pending []byte
	off := 0
	for iter := 0; iter < 4*len(enc)+8; iter++ {
		if off < len(enc) && (len(pending) == 0 || iter%2 == 1) {
			end := min(off+step, len(enc))
			pending = append(pending, enc[off:end]...)
			off = end
		}
		c, data, fin, e := d.Decode(pending)
		if e != nil {
			return body, e, false, 0
		}
		if c > len(pending) || (data != nil && len(data) > c) {
			panic("consumed out of range")
		}
		body = append(body, data...)
		pending = pending[c:]
		if fin {
			return body, nil, true, len(pending) + len(enc) - off
		}
		if off == len(enc) && c == 0 {
			break
		}
	}
	return body, nil, false, 0
}

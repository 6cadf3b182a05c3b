package pipeline

import (
	"bytes"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"edgeproxy/snapshot"
)

// Response encodings. gzip is nginx's; br and zstd are edgeproxy
// extensions (brotli_* and zstd_* directives).
const (
	encNone uint8 = iota
	encGzip
	encBrotli
	encZstd
)

var encNames = [...]string{"", "gzip", "br", "zstd"}

// encTie orders encodings the client rates equally: zstd compresses about
// as well as brotli at a fraction of its CPU, and both beat gzip.
var encTie = [...]int{encNone: 0, encGzip: 1, encBrotli: 2, encZstd: 3}

// aeQ returns the q-value (in thousandths) the Accept-Encoding header ae
// gives the coding name, or -1 when ae does not name it (RFC 9110 12.5.3;
// "*" is not honoured, like nginx's gzip).
func aeQ(ae []byte, name string) int {
	for len(ae) > 0 {
		var item []byte
		if i := bytes.IndexByte(ae, ','); i >= 0 {
			item, ae = ae[:i], ae[i+1:]
		} else {
			item, ae = ae, nil
		}
		item = bytes.TrimSpace(item)
		tok := item
		var params []byte
		if i := bytes.IndexByte(item, ';'); i >= 0 {
			tok, params = bytes.TrimSpace(item[:i]), item[i+1:]
		}
		if !bytes.EqualFold(tok, []byte(name)) {
			continue
		}
		return qValue(params)
	}
	return -1
}

// qValue is the q-value of an Accept-Encoding item in thousandths: 1000
// when there is no "q=" parameter, else nginx's ngx_http_gzip_quantity: "0"
// or "1", optionally "." and at most three digits, at most 1; anything
// else (q=, q=1.5, q=0x, q=0.0001) is 0, i.e. refused (checked against
// nginx in e2e.TestAcceptEncodingQDifferential).
func qValue(params []byte) int {
	for len(params) > 0 {
		var p []byte
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, nil
		}
		p = bytes.TrimSpace(p)
		if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
			continue
		}
		return quantity(p[2:])
	}
	return 1000
}

func quantity(v []byte) int {
	if len(v) == 0 || (v[0] != '0' && v[0] != '1') {
		return 0
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q
	}
	if v[1] != '.' || len(v) > 5 {
		return 0
	}
	mul := 100
	for _, ch := range v[2:] {
		if ch < '0' || ch > '9' {
			return 0
		}
		q += int(ch-'0') * mul
		mul /= 10
	}
	if q > 1000 {
		return 0
	}
	return q
}

// chooseEncoding picks the coding for a response eligible for gzip (gz),
// brotli (br) and/or zstd (zs): the one the client rates highest, ties
// broken by encTie. gzip keeps nginx's acceptance rule (acceptsGzip).
func (c *Conn) chooseEncoding(g *snapshot.Gzip, gz, br, zs bool) uint8 {
	if !c.gzipReqOK(g) {
		return encNone
	}
	ae := c.w.req.Header(hAcceptEncoding)
	best, bestQ := encNone, 0
	consider := func(enc uint8, q int) {
		if q > bestQ || q == bestQ && q > 0 && encTie[enc] > encTie[best] {
			best, bestQ = enc, q
		}
	}
	if gz && acceptsGzip(ae) {
		consider(encGzip, max(aeQ(ae, "gzip"), 1))
	}
	if br {
		consider(encBrotli, aeQ(ae, "br"))
	}
	if zs {
		consider(encZstd, aeQ(ae, "zstd"))
	}
	return best
}

// brotliWriters pools one brotli writer per level (0..11).
var brotliWriters [12]sync.Pool

// zstdEncoders holds one encoder per level, made on first use; EncodeAll
// is safe for concurrent use and pools its state internally.
var (
	zstdMu       sync.Mutex
	zstdEncoders [23]*zstd.Encoder
)

func zstdEncoder(level int) *zstd.Encoder {
	zstdMu.Lock()
	defer zstdMu.Unlock()
	if e := zstdEncoders[level]; e != nil {
		return e
	}
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithZeroFrames(true))
	zstdEncoders[level] = e
	return e
}

// compressBody encodes body with the chosen coding into the exchange's
// buffer.
func (c *Conn) compressBody(body []byte) []byte {
	x := &c.w.x
	switch x.enc {
	case encBrotli:
		level := x.loc.Brotli.Level
		sw := &x.gzOut
		sw.b = sw.b[:0]
		bw, _ := brotliWriters[level].Get().(*brotli.Writer)
		if bw == nil {
			bw = brotli.NewWriterLevel(sw, level)
		} else {
			bw.Reset(sw)
		}
		_, _ = bw.Write(body)
		_ = bw.Close()
		brotliWriters[level].Put(bw)
		return sw.b
	case encZstd:
		x.gzOut.b = zstdEncoder(x.loc.Zstd.Level).EncodeAll(body, x.gzOut.b[:0])
		return x.gzOut.b
	}
	return c.gzipBody(body, x.loc.Gzip.Level)
}

// staticEncoded serves FILE.br or FILE.zst (brotli_static, zstd_static) or
// FILE.gz (gzip_static) in the client's order of preference. It returns
// false when the static handler should serve FILE itself.
func (c *Conn) staticEncoded(loc *snapshot.Location) bool {
	x := &c.w.x
	ae := c.w.req.Header(hAcceptEncoding)
	type cand struct {
		enc  uint8
		mode snapshot.GzipStatic
		q    int
	}
	var cs [3]cand
	n := 0
	if m := loc.Zstd.Static; m != snapshot.GzipStaticOff {
		cs[n] = cand{encZstd, m, aeQ(ae, "zstd")}
		n++
	}
	if m := loc.Brotli.Static; m != snapshot.GzipStaticOff {
		cs[n] = cand{encBrotli, m, aeQ(ae, "br")}
		n++
	}
	if m := loc.Gzip.Static; m != snapshot.GzipStaticOff {
		q := 0
		if acceptsGzip(ae) {
			q = max(aeQ(ae, "gzip"), 1)
		}
		cs[n] = cand{encGzip, m, q}
		n++
	}
	// Insertion sort by q, descending; the order above breaks ties.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && cs[j].q > cs[j-1].q; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
	reqOK := -1 // gzipReqOK, computed once when needed
	for _, cd := range cs[:n] {
		if cd.enc == encGzip {
			if c.gzipStatic(loc) {
				return true
			}
			continue
		}
		accepted := cd.mode == snapshot.GzipStaticAlways
		if !accepted && cd.q > 0 {
			if reqOK < 0 {
				reqOK = 0
				if c.gzipReqOK(&loc.Gzip) {
					reqOK = 1
				}
			}
			accepted = reqOK == 1
		}
		if !accepted && !loc.Gzip.Vary {
			continue
		}
		ext := ".br"
		if cd.enc == encZstd {
			ext = ".zst"
		}
		x.prePath = append(append(x.prePath[:0], x.path...), ext...)
		f, err := c.snap.Files.Open(x.prePath)
		if err != nil {
			continue
		}
		if cd.mode == snapshot.GzipStaticOn {
			x.preVary = true
		}
		if !accepted || f.IsDir {
			continue
		}
		x.preEnc = encNames[cd.enc]
		c.sendFile(f)
		return true
	}
	return false
}

package pipeline

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/klauspost/compress/gzip"

	"edgeproxy/snapshot"
)

// gzipCheck is nginx's gzip decision (ngx_http_gzip_header_filter, then
// ngx_http_gzip_ok). vary reports that the response was eligible, so
// "Vary: Accept-Encoding" is sent with gzip_vary on even when this client
// gets it uncompressed; compress reports that this client gets gzip.
//
// It also decides brotli and zstd (edgeproxy extensions): compress then
// means "some coding", left in x.enc for writeGzipped; with both off the
// decision is nginx's gzip decision exactly.
func (c *Conn) gzipCheck(status int, ctype []byte, clen int64, hasEncoding bool) (vary, compress bool) {
	x := &c.w.x
	x.enc = encNone
	loc := x.loc
	g := &loc.Gzip
	if !g.On && !loc.Brotli.On && !loc.Zstd.On || hasEncoding {
		return false, false
	}
	if x.overrideStatus != 0 {
		status = x.overrideStatus
	}
	if status != 200 && status != 403 && status != 404 {
		return false, false
	}
	mt := ctype
	if i := bytes.IndexByte(mt, ';'); i >= 0 {
		mt = bytes.TrimRight(mt[:i], " ")
	}
	mt = lowerIfNeeded(mt, &x.lowerBuf)
	gz := g.On && !(clen >= 0 && clen < g.MinLength) && (g.AnyType || g.Types[string(mt)])
	br := loc.Brotli.Eligible(mt, clen)
	zs := loc.Zstd.Eligible(mt, clen)
	if !br && !zs {
		if !gz {
			return false, false
		}
		if c.gzipOK(g) {
			x.enc = encGzip
			return g.Vary, true
		}
		return g.Vary, false
	}
	x.enc = c.chooseEncoding(g, gz, br, zs)
	return g.Vary, x.enc != encNone
}

// gzipOK checks the request side (ngx_http_gzip_ok): HTTP version,
// Accept-Encoding, gzip_disable, and gzip_proxied for requests with Via.
func (c *Conn) gzipOK(g *snapshot.Gzip) bool {
	return acceptsGzip(c.w.req.Header(hAcceptEncoding)) && c.gzipReqOK(g)
}

// gzipReqOK is ngx_http_gzip_ok without the Accept-Encoding test: HTTP
// version, gzip_disable and gzip_proxied, which brotli and zstd obey too.
func (c *Conn) gzipReqOK(g *snapshot.Gzip) bool {
	r := &c.w.req
	major, minor := r.Proto()
	if major == 1 && minor == 0 && !g.HTTP10 {
		return false
	}
	if ua := r.Header(hUserAgent); ua != nil {
		if g.DisableMSIE && isMSIE6(ua) {
			return false
		}
		for _, re := range g.Disable {
			if re.Match(ua) {
				return false
			}
		}
	}
	if r.Header(hVia) != nil {
		p := g.Proxied
		switch {
		case p&snapshot.ProxiedAny != 0:
			return true
		case p&snapshot.ProxiedOff != 0 || p == 0:
			return false
		case p&snapshot.ProxiedAuth != 0 && r.Header(hAuthorization) != nil:
			return true
		case p&snapshot.ProxiedNoETag != 0 && !bytes.Contains(c.w.x.hdrs, []byte("ETag:")):
			return true
		case p&snapshot.ProxiedNoLastModified != 0 && !bytes.Contains(c.w.x.hdrs, []byte("Last-Modified:")):
			return true
		}
		return false
	}
	return true
}

// acceptsGzip parses Accept-Encoding like ngx_http_gzip_accept_encoding:
// a "gzip" token whose q-value is not zero (qValue).
func acceptsGzip(ae []byte) bool { return aeQ(ae, "gzip") > 0 }

// isMSIE6 is gzip_disable msie6: "MSIE [4-6]\." without "SV1" (nginx's
// special-cased check).
func isMSIE6(ua []byte) bool {
	i := bytes.Index(ua, []byte("MSIE "))
	if i < 0 || i+7 > len(ua) {
		return false
	}
	v := ua[i+5]
	if v < '4' || v > '6' || ua[i+6] != '.' {
		return false
	}
	return !bytes.Contains(ua[i:], []byte("SV1"))
}

var (
	hAcceptEncoding = []byte("accept-encoding")
	hUserAgent      = []byte("user-agent")
	hVia            = []byte("via")
)

// gzipWriters pools one compressor per level (klauspost/compress: faster
// than compress/gzip at the same ratio).
var gzipWriters [10]sync.Pool

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// gzipBody compresses body into the exchange's buffer.
func (c *Conn) gzipBody(body []byte, level int) []byte {
	x := &c.w.x
	sw := &x.gzOut
	sw.b = sw.b[:0]
	zw, _ := gzipWriters[level].Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(sw, level)
	} else {
		zw.Reset(sw)
	}
	_, _ = zw.Write(body)
	_ = zw.Close()
	gzipWriters[level].Put(zw)
	return sw.b
}

// writeGzipped writes h and body compressed with x.enc (gzip, or brotli or
// zstd): chunked for HTTP/1.1 (nginx
// does not know the length in advance either), close-delimited for 1.0.
func (c *Conn) writeGzipped(h *head, body []byte) {
	x := &c.w.x
	h.contentLength = -1
	h.gzip, h.vary = true, x.loc.Gzip.Vary
	if x.head {
		// nginx sends the gzip headers for HEAD too, without a body.
		c.writeHead(h)
		return
	}
	z := c.compressBody(body)
	_, minor := c.w.req.Proto()
	if minor == 0 {
		c.closeNext = true
	} else {
		h.chunked = true
	}
	c.writeHead(h)
	x.bodySent = int64(len(z))
	if h.chunked {
		c.w.out = strconv.AppendInt(c.w.out, int64(len(z)), 16)
		c.w.out = append(c.w.out, "\r\n"...)
		c.writeBodyRaw(z)
		c.w.out = append(c.w.out, "\r\n0\r\n\r\n"...)
		return
	}
	c.writeBodyRaw(z)
}

// weakenETag turns a strong ETag in the headers list into a weak one, as
// nginx's gzip filter does (ngx_http_weak_etag).
func weakenETag(hdrs []byte) []byte {
	i := bytes.Index(hdrs, []byte("ETag: \""))
	if i < 0 {
		return hdrs
	}
	j := i + len("ETag: ")
	hdrs = append(hdrs, 0, 0)
	copy(hdrs[j+2:], hdrs[j:len(hdrs)-2])
	hdrs[j], hdrs[j+1] = 'W', '/'
	return hdrs
}

// lowerIfNeeded returns b lowercased, copying into *buf only when b has
// upper-case letters (MIME types nearly always arrive lowercase), so the
// map lookup allocates nothing.
func lowerIfNeeded(b []byte, buf *[]byte) []byte {
	for _, ch := range b {
		if ch >= 'A' && ch <= 'Z' {
			out := (*buf)[:0]
			for _, c := range b {
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				out = append(out, c)
			}
			*buf = out
			return out
		}
	}
	return b
}

// gzipStatic is ngx_http_gzip_static_handler: for a GET or HEAD of FILE it
// serves FILE.gz, when it exists, with Content-Encoding: gzip, the
// Content-Type of FILE and the validators and length of FILE.gz (large
// ones with sendfile, like any static file). It returns false when the
// request goes on to the static handler (no .gz, or this client does not
// take gzip). x.path holds FILE's path.
func (c *Conn) gzipStatic(loc *snapshot.Location) bool {
	x := &c.w.x
	g := &loc.Gzip
	ok := g.Static == snapshot.GzipStaticAlways || c.gzipOK(g)
	if !ok && !g.Vary {
		return false // nothing to learn from the file (no Vary to add)
	}
	x.prePath = append(append(x.prePath[:0], x.path...), ".gz"...)
	f, err := c.snap.Files.Open(x.prePath)
	if err != nil {
		// nginx declines on ENOENT/ENOTDIR (and logs other errors before
		// declining).
		return false
	}
	if g.Static == snapshot.GzipStaticOn {
		// The file exists: the response varies by Accept-Encoding whether
		// or not this client gets it (r->gzip_vary = 1).
		x.preVary = true
		if !ok {
			return false
		}
	}
	if f.IsDir {
		return false
	}
	x.preEnc = "gzip"
	c.sendFile(f)
	return true
}

package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

// ResponseHead is the client response head composed from an upstream
// response by ComposeResponse, split the way nginx's
// ngx_http_header_filter writes it:
//
//	HTTP/1.1 <StatusLine>
//	Server, Date          (pipeline; skipped when HasServer / HasDate)
//	Content-Type          (ContentType, if the upstream sent one)
//	Content-Length        (pipeline framing)
//	Location              (Location: relative after proxy_redirect; the
//	                       pipeline prefixes scheme://host[:port] when
//	                       absolute_redirect is on)
//	Transfer-Encoding, Connection, Keep-Alive (pipeline framing)
//	Lines                 (every other passed header, in upstream order)
//
// Byte slices point into the upstream response or into the head's own
// buffer; they are valid until the next ComposeResponse on this head or
// until the Job/Response is released. The zero value is ready to use; a
// ResponseHead belongs to one goroutine at a time.
type ResponseHead struct {
	// Status is the upstream status code.
	Status int
	// StatusLine is what nginx writes after "HTTP/1.1 ": the upstream's
	// status code and reason phrase verbatim (u->headers_in.status_line),
	// e.g. "200 OK", "404 Gone Fishing", "200" when it sent no reason.
	StatusLine []byte
	// ContentType is the upstream Content-Type value exactly as sent
	// (ngx_http_upstream_copy_content_type); nil when it sent none, in
	// which case nginx sends none either.
	ContentType []byte
	// ContentLength is the body length as fasthttp knows it after reading
	// the response: the upstream's Content-Length (also for HEAD/304), or
	// the length of a buffered until-close/de-chunked body; -1 when
	// unknown (streamed body).
	ContentLength int
	// Location is set when proxy_redirect rewrote the Location header to
	// a relative URI (r->headers_out.location with a leading '/'); it is
	// then not in Lines. nil otherwise.
	Location []byte
	// Lines are the passed headers as "Name: value\r\n", names spelled as
	// the upstream sent them.
	Lines []byte
	// HasServer / HasDate report that proxy_pass_header passed the
	// upstream's Server / Date in Lines, so the pipeline must not write
	// its own (ngx_http_header_filter checks r->headers_out.server/date).
	HasServer, HasDate bool
	// X-Accel-* values as sent (nil if absent), whether or not hidden, for
	// the caller to act on: X-Accel-Redirect (internal redirect),
	// X-Accel-Buffering, X-Accel-Expires, X-Accel-Limit-Rate,
	// X-Accel-Charset.
	AccelRedirect, AccelBuffering, AccelExpires, AccelLimitRate, AccelCharset []byte

	buf []byte
}

// ComposeResponse fills h from resp following ngx_http_upstream_process_headers
// and the copy handlers of ngx_http_upstream_headers_in: headers named by
// the hide list (Date, Server, X-Pad, X-Accel-* by default; proxy_pass_header
// re-enables, proxy_hide_header adds) are dropped; Connection, Keep-Alive,
// Transfer-Encoding and Content-Length are framing the pipeline redoes;
// Location and Refresh are rewritten by proxy_redirect; everything else is
// kept in order, repeated headers included.
//
// fasthttp keeps Set-Cookie, Content-Encoding, Server and Trailer apart
// from the other headers, so their position relative to the rest cannot be
// recovered: Content-Encoding (and a passed Server) come first, Set-Cookie
// lines last, each group in upstream order. resp must have been read with
// SetNoDefaultContentType (upstream.Group.Do does). Called by the goroutine
// owning h and resp; does not allocate once h's buffers have grown.
func (s *Settings) ComposeResponse(resp *fasthttp.Response, h *ResponseHead) {
	rh := &resp.Header
	h.buf = h.buf[:0]
	h.Lines = h.Lines[:0]
	h.Status = rh.StatusCode()
	h.ContentType, h.Location = nil, nil
	h.HasServer, h.HasDate = false, false
	h.AccelRedirect, h.AccelBuffering, h.AccelExpires, h.AccelLimitRate, h.AccelCharset = nil, nil, nil, nil, nil

	start := len(h.buf)
	h.buf = strconv.AppendInt(h.buf, int64(h.Status), 10)
	if msg := rh.StatusMessage(); len(msg) > 0 {
		h.buf = append(h.buf, ' ')
		h.buf = append(h.buf, msg...)
	}
	statusEnd := len(h.buf)

	h.ContentLength = rh.ContentLength()
	if h.ContentLength < 0 {
		h.ContentLength = -1
	}
	if ct := rh.ContentType(); len(ct) > 0 && !s.hidden(strContentType) {
		h.ContentType = ct
	}
	if ce := rh.ContentEncoding(); len(ce) > 0 && !s.hidden(strContentEncoding) {
		h.Lines = appendLine(h.Lines, strContentEncoding, ce)
	}
	if s.passServer {
		if sv := rh.Server(); len(sv) > 0 {
			h.Lines = appendLine(h.Lines, strServer, sv)
			h.HasServer = true
		}
	}
	for k, v := range rh.All() {
		switch {
		case len(k) == 0:
			continue
		case eqFold(k, strSetCookie), eqFold(k, strContentType), eqFold(k, strContentEncoding),
			eqFold(k, strServer), eqFold(k, strContentLength):
			continue // handled separately
		case eqFold(k, strConnection), eqFold(k, strKeepAlive), eqFold(k, strTransferEncoding), eqFold(k, strTrailer):
			// ngx_http_upstream_ignore_header_line: the pipeline frames
			// the response itself. Trailers are not relayed (nginx drops
			// them too), so announcing them would be a lie.
			continue
		}
		s.captureAccel(h, k, v)
		if s.hidden(k) {
			continue
		}
		switch {
		case eqFold(k, strDate):
			h.HasDate = true
		case eqFold(k, strLocation):
			// ngx_http_upstream_rewrite_location.
			if nv, ok := s.rewriteRedirect(h, v, 0); ok {
				if len(nv) > 0 && nv[0] == '/' {
					h.Location = nv
					continue
				}
				v = nv
			}
		case eqFold(k, strRefresh):
			// ngx_http_upstream_rewrite_refresh: rewrite after "url=".
			if i := indexFold(v, strURLEq); i >= 0 {
				if nv, ok := s.rewriteRedirect(h, v, i+len(strURLEq)); ok {
					v = nv
				}
			}
		}
		h.Lines = appendLine(h.Lines, k, v)
	}
	for _, v := range rh.Cookies() {
		if s.hidden(strSetCookie) {
			break
		}
		h.Lines = appendLine(h.Lines, strSetCookie, v)
	}
	h.StatusLine = h.buf[start:statusEnd:statusEnd]
}

// captureAccel records the X-Accel-* values: nginx's process handlers
// (ngx_http_upstream_process_header_line etc.) run before hiding.
func (s *Settings) captureAccel(h *ResponseHead, k, v []byte) {
	if len(k) < 8 || !eqFold(k[:8], strXAccel) {
		return
	}
	switch rest := k[8:]; {
	case eqFold(rest, []byte("Redirect")):
		h.AccelRedirect = v
	case eqFold(rest, []byte("Buffering")):
		h.AccelBuffering = v
	case eqFold(rest, []byte("Expires")):
		h.AccelExpires = v
	case eqFold(rest, []byte("Limit-Rate")):
		h.AccelLimitRate = v
	case eqFold(rest, []byte("Charset")):
		h.AccelCharset = v
	}
}

// rewriteRedirect is ngx_http_proxy_rewrite_redirect: the first rule whose
// pattern is a prefix of value[prefix:] replaces it. The result lives in
// h.buf.
func (s *Settings) rewriteRedirect(h *ResponseHead, value []byte, prefix int) ([]byte, bool) {
	rest := value[prefix:]
	for _, r := range s.redirects {
		if len(r.pattern) > len(rest) || string(rest[:len(r.pattern)]) != r.pattern {
			continue
		}
		start := len(h.buf)
		h.buf = append(h.buf, value[:prefix]...)
		h.buf = append(h.buf, r.replacement...)
		h.buf = append(h.buf, rest[len(r.pattern):]...)
		return h.buf[start:len(h.buf):len(h.buf)], true
	}
	return nil, false
}

func (s *Settings) hidden(name []byte) bool {
	for _, h := range s.hide {
		if eqFold(name, h) {
			return true
		}
	}
	return false
}

// AppendResponseHeaders appends the composed header lines of resp as
// "Name: value\r\n", in nginx's order, without the lines the pipeline
// writes itself (Server, Date, Content-Length, Transfer-Encoding,
// Connection, Keep-Alive): Content-Type, a proxy_redirect-relative
// Location (as is: absolute_redirect needs the server name and port, see
// ResponseHead), then the other headers. It allocates a ResponseHead; hot
// paths use ComposeResponse on a reused head (Do does).
func (s *Settings) AppendResponseHeaders(dst []byte, resp *fasthttp.Response) []byte {
	var h ResponseHead
	s.ComposeResponse(resp, &h)
	return h.AppendHeaders(dst)
}

// AppendHeaders appends Content-Type, Location (relative, as is) and
// Lines as header lines.
func (h *ResponseHead) AppendHeaders(dst []byte) []byte {
	if h.ContentType != nil {
		dst = appendLine(dst, strContentType, h.ContentType)
	}
	if h.Location != nil {
		dst = appendLine(dst, strLocation, h.Location)
	}
	return append(dst, h.Lines...)
}

func appendLine(dst, k, v []byte) []byte {
	dst = append(dst, k...)
	dst = append(dst, ':', ' ')
	dst = append(dst, v...)
	return append(dst, '\r', '\n')
}

var (
	strContentType      = []byte("Content-Type")
	strContentEncoding  = []byte("Content-Encoding")
	strContentLength    = []byte("Content-Length")
	strServer           = []byte("Server")
	strDate             = []byte("Date")
	strSetCookie        = []byte("Set-Cookie")
	strConnection       = []byte("Connection")
	strKeepAlive        = []byte("Keep-Alive")
	strTransferEncoding = []byte("Transfer-Encoding")
	strTrailer          = []byte("Trailer")
	strLocation         = []byte("Location")
	strRefresh          = []byte("Refresh")
	strURLEq            = []byte("url=")
	strXAccel           = []byte("X-Accel-")
)

// eqFold is an ASCII case-insensitive comparison (header names are ASCII).
func eqFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x != y && lower(x) != lower(y) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// indexFold is ngx_strlcasestrn: the first case-insensitive occurrence of
// sub in s, or -1.
func indexFold(s, sub []byte) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if eqFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

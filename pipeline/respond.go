package pipeline

import (
	"io"
	"strconv"
	"time"

	"edgeproxy/http1"
	"edgeproxy/snapshot"
	"edgeproxy/static"
)

// Version is the product version shown in the Server header with
// server_tokens on (http1.ServerVersion carries the same for error pages).
const Version = "0.1.0"

var (
	serverOn  = []byte("Server: " + http1.ServerVersion + "\r\n")
	serverOff = []byte("Server: edgeproxy\r\n")
)

// addHeaderStatus reports whether add_header (without "always") applies to
// status, per ngx_http_headers_filter.
func addHeaderStatus(s int) bool {
	switch s {
	case 200, 201, 204, 206, 301, 302, 303, 304, 307, 308:
		return true
	}
	return false
}

// closingStatus lists the errors after which nginx drops keep-alive
// (ngx_http_special_response_handler).
func closingStatus(s int) bool {
	switch s {
	case 400, 413, 414, 494, 495, 496, 497, 500, 501:
		return true
	}
	return false
}

// head describes the response header being written.
type head struct {
	status        int
	contentType   []byte
	charset       bool
	contentLength int64 // -1: none
	lastModified  []byte
	location      []byte
	filterStatus  int    // status add_header decides on, when not status
	statusLine    []byte // upstream's "code reason" written verbatim (nginx keeps it)
	noServer      bool   // proxy_pass_header Server: the upstream's is in x.hdrs
	noDate        bool
	upstream      bool
	chunked       bool // Transfer-Encoding: chunked (gzip of a known body, as nginx streams it)
	gzip          bool // Content-Encoding: gzip
	vary          bool // Vary: Accept-Encoding (gzip_vary on an eligible response)
	upgrade       bool // 101: "Connection: upgrade"
}

// writeHead appends the status line and headers in nginx's order
// (ngx_http_header_filter): Server, Date, Content-Type, Content-Length,
// Last-Modified, Location, Connection, Keep-Alive, then the headers list
// (x.hdrs: ETag, Expires, Cache-Control, ...), then add_header values.
func (c *Conn) writeHead(h *head) {
	x := &c.w.x
	loc := x.loc
	if x.overrideStatus != 0 && h.status != 304 {
		// error_page: the response keeps the error's code (or "=code"),
		// whatever the target location answers (ngx_http_send_header).
		h.status = x.overrideStatus
		h.filterStatus = 0
	}
	x.status = h.status
	headStart := len(c.w.out)
	b := c.w.out
	if h.statusLine != nil && x.overrideStatus == 0 {
		b = append(b, "HTTP/1.1 "...)
		b = append(b, h.statusLine...)
		b = append(b, "\r\n"...)
	} else {
		b = http1.AppendStatusLine(b, h.status)
	}
	if !h.noServer {
		if loc.ServerTokens {
			b = append(b, serverOn...)
		} else {
			b = append(b, serverOff...)
		}
	}
	if !h.noDate {
		b = append(b, "Date: "...)
		b = append(b, http1.DateHeader()...)
		b = append(b, "\r\n"...)
	}
	if h.contentType != nil {
		b = append(b, "Content-Type: "...)
		b = append(b, h.contentType...)
		if h.charset && !h.upstream && loc.Charset != "" && charsetType(h.contentType) {
			b = append(b, "; charset="...)
			b = append(b, loc.Charset...)
		}
		b = append(b, "\r\n"...)
	}
	if h.contentLength >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, h.contentLength, 10)
		b = append(b, "\r\n"...)
	}
	if h.lastModified != nil {
		b = append(b, "Last-Modified: "...)
		b = append(b, h.lastModified...)
		b = append(b, "\r\n"...)
	}
	if h.location != nil {
		b = append(b, "Location: "...)
		b = c.appendAbsolute(b, h.location)
		b = append(b, "\r\n"...)
	}
	if h.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if h.upgrade {
		b = append(b, "Connection: upgrade\r\n"...)
	} else if c.closeNext || closingStatus(h.status) && x.status >= 400 {
		c.closeNext = true
		b = append(b, "Connection: close\r\n"...)
	} else {
		b = append(b, "Connection: keep-alive\r\n"...)
		if loc.KeepaliveHeader > 0 {
			b = append(b, "Keep-Alive: timeout="...)
			b = strconv.AppendInt(b, int64(loc.KeepaliveHeader/time.Second), 10)
			b = append(b, "\r\n"...)
		}
	}
	if h.vary || x.preVary && loc.Gzip.Vary {
		// gzip_static found a .gz: every response to the request varies
		// (r->gzip_vary in ngx_http_header_filter), even a 404.
		b = append(b, "Vary: Accept-Encoding\r\n"...)
	}
	if h.gzip {
		x.hdrs = weakenETag(x.hdrs)
	}
	b = append(b, x.hdrs...)
	c.w.out = b
	if len(loc.AddHeaders) > 0 {
		fs := h.status
		if h.filterStatus != 0 {
			fs = h.filterStatus
		}
		c.appendAddHeaders(fs)
	}
	if h.gzip {
		c.w.out = append(c.w.out, "Content-Encoding: "...)
		c.w.out = append(c.w.out, encNames[x.enc]...)
		c.w.out = append(c.w.out, "\r\n"...)
	}
	c.w.out = append(c.w.out, "\r\n"...)
	x.headSent = int64(len(c.w.out) - headStart)
	x.bodySent = 0
}

// appendAddHeaders evaluates add_header values; an empty value adds nothing,
// as in nginx.
func (c *Conn) appendAddHeaders(status int) {
	x := &c.w.x
	for i := range x.loc.AddHeaders {
		ah := &x.loc.AddHeaders[i]
		if !ah.Always && !addHeaderStatus(status) {
			continue
		}
		start := len(c.w.out)
		c.w.out = append(c.w.out, ah.Name...)
		c.w.out = append(c.w.out, ": "...)
		vstart := len(c.w.out)
		c.w.out = c.eval(c.w.out, &ah.Value)
		if len(c.w.out) == vstart {
			c.w.out = c.w.out[:start]
			continue
		}
		c.w.out = append(c.w.out, "\r\n"...)
	}
}

// charsetType reports whether `charset` applies to a MIME type: nginx's
// default charset_types.
func charsetType(ct []byte) bool {
	switch string(ct) {
	case "text/html", "text/xml", "text/plain", "text/vnd.wap.wml", "application/javascript", "application/rss+xml":
		return true
	}
	return false
}

// appendAbsolute makes a Location absolute like ngx_http_header_filter does
// when absolute_redirect is on: scheme://host[:port] + path.
func (c *Conn) appendAbsolute(b, loc []byte) []byte {
	l := c.w.x.loc
	if len(loc) == 0 || loc[0] != '/' || !l.AbsoluteRedirect {
		return append(b, loc...)
	}
	if c.tls {
		b = append(b, "https://"...)
	} else {
		b = append(b, "http://"...)
	}
	host := c.w.req.Host()
	if l.ServerNameInRedirect || len(host) == 0 {
		if c.w.x.srv.Name != "" {
			b = append(b, c.w.x.srv.Name...)
		} else {
			b = appendAddr(b, c.local.Addr())
		}
	} else {
		b = append(b, host...)
	}
	port := int(c.local.Port())
	if l.PortInRedirect && port != 0 && !(port == 80 && !c.tls) && !(port == 443 && c.tls) {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(port), 10)
	}
	return append(b, loc...)
}

// defaultTypeFor returns default_type for text responses of `return`.
func (c *Conn) defaultTypeFor(l *snapshot.Location) []byte {
	return l.DefaultTypeBytes()
}

// writeSimple writes a complete response with an in-memory body.
func (c *Conn) writeSimple(status int, body []byte, ctype []byte, noCharset bool) {
	x := &c.w.x
	x.status = status
	h := head{status: status, contentType: ctype, charset: !noCharset, contentLength: int64(len(body))}
	if status == 204 || status == 304 || status < 200 {
		h.contentType, h.contentLength = nil, -1
		body = nil
	}
	c.writeHeadBody(&h, body, false)
}

// writeHeadBody writes a response with an in-memory body, compressed when
// gzip applies.
func (c *Conn) writeHeadBody(h *head, body []byte, hasEncoding bool) {
	x := &c.w.x
	if h.contentType != nil {
		vary, gz := c.gzipCheck(h.status, h.contentType, h.contentLength, hasEncoding)
		if gz {
			c.writeGzipped(h, body)
			return
		}
		h.vary = vary
	}
	c.writeHead(h)
	if !x.head {
		c.writeBody(body)
	}
}

// sendRedirect answers with a redirect; nginx sends its HTML body for 301,
// 302, 303, 307 and 308.
func (c *Conn) sendRedirect(code int, location []byte) {
	x := &c.w.x
	x.status = code
	if ep := c.errorPageFor(code); ep != nil {
		c.runErrorPage(code, ep)
		return
	}
	body := http1.ErrorPageBody(code, x.loc.ServerTokens)
	h := head{status: code, contentType: textHTML, contentLength: int64(len(body)), location: location}
	c.writeHead(&h)
	if !x.head {
		c.writeBody(body)
	}
}

var textHTML = []byte("text/html")

// errorPageFor returns the error_page entry of the current location for
// status, unless one was already followed and recursive_error_pages is off.
func (c *Conn) errorPageFor(status int) *snapshot.ErrorPage {
	x := &c.w.x
	if x.loc == nil || x.loc.ErrorPages == nil || x.badRequest {
		return nil
	}
	if x.errorPage && !x.loc.RecursiveErrorPages {
		return nil
	}
	return x.loc.ErrorPages[status]
}

// finalize answers with status: through error_page if one applies, else
// nginx's built-in page (ngx_http_special_response_handler).
func (c *Conn) finalize(status int) {
	x := &c.w.x
	x.status = status
	if ep := c.errorPageFor(status); ep != nil {
		c.runErrorPage(status, ep)
		return
	}
	if closingStatus(status) {
		c.closeNext = true
	}
	wire := status
	if status >= 494 && status <= 497 {
		wire = 400 // nginx's internal codes are sent as 400 (err_status)
	}
	if status == 304 || status == 204 {
		c.writeSimple(status, nil, nil, true)
		return
	}
	body := http1.ErrorPageBody(status, x.loc.ServerTokens)
	h := head{status: wire, contentType: textHTML, contentLength: int64(len(body))}
	x.hdrs = x.hdrs[:0]
	c.writeHeadBody(&h, body, false)
}

// runErrorPage follows an error_page entry (ngx_http_send_error_page).
func (c *Conn) runErrorPage(status int, ep *snapshot.ErrorPage) {
	x := &c.w.x
	x.errorPage = true
	x.hdrs = x.hdrs[:0]
	code := status
	if ep.Overwrite > 0 {
		code = ep.Overwrite
	}
	if ep.Redirect {
		x.scratch = c.eval(x.scratch[:0], &ep.URI)
		if ep.Overwrite <= 0 {
			code = 302
		}
		x.status = code
		body := http1.ErrorPageBody(code, x.loc.ServerTokens)
		h := head{status: code, contentType: textHTML, contentLength: int64(len(body)), location: x.scratch}
		c.writeHead(&h)
		if !x.head {
			c.writeBody(body)
		}
		return
	}
	x.overrideStatus = code
	if ep.Overwrite == -1 {
		x.overrideStatus = 0
	}
	if ep.Named != nil {
		x.internal = true
		x.redirects++
		c.runLocation(ep.Named)
		return
	}
	x.scratch = c.eval(x.scratch[:0], &ep.URI)
	c.internalRedirect(append(x.path[:0], x.scratch...))
}

// sendFile answers with a static file: conditional requests, ranges,
// validators and expires (ngx_http_static_handler and its filters).
func (c *Conn) sendFile(f *static.File) {
	x := &c.w.x
	loc := x.loc
	status := 200
	if x.overrideStatus != 0 {
		status = x.overrideStatus
	}
	ctype := loc.Types.Lookup(x.uri)
	if ctype == nil {
		ctype = loc.DefaultTypeBytes()
	}
	if len(x.accelType) > 0 {
		ctype = x.accelType
	}
	x.hdrs = append(x.hdrs[:0], x.accelHdrs...)
	// A precompressed file already has its Content-Encoding: the gzip
	// filter leaves it alone (ngx_http_gzip_header_filter checks
	// content_encoding), so its ETag stays strong.
	gzVary, gz := c.gzipCheck(status, ctype, f.Size, x.preEnc != "")
	preVary := x.preVary && loc.Gzip.Vary
	if preVary {
		gzVary = true
	}
	if gz && f.Data == nil && f.Size > maxGzipFile {
		gz = false // too big to compress in memory: sent as is
	}
	if status == 200 {
		switch static.Conditional(f, c.w.req.Header(hIfModifiedSince), c.w.req.Header(hIfNoneMatch), c.w.req.Header(hIfMatch), c.w.req.Header(hIfUnmodifiedSince), loc.IMS, loc.Etag) {
		case 304:
			x.status = 304
			if loc.Etag {
				x.hdrs = append(x.hdrs, "ETag: "...)
				x.hdrs = append(x.hdrs, f.ETag...)
				x.hdrs = append(x.hdrs, "\r\n"...)
			}
			x.hdrs = loc.Expires.AppendHeaders(x.hdrs, c.clock(), f.ModTime)
			// A 304 drops Content-Encoding (ngx_http_not_modified_header_filter)
			// but keeps the Vary that gzip_static decided on.
			h := head{status: 304, contentLength: -1, lastModified: f.LastModified, vary: preVary}
			c.writeHead(&h)
			return
		case 412:
			c.finalize(412)
			return
		}
	}
	// The headers filter (expires, add_header) runs before the range
	// filter in nginx, so both see the status as it was before a Range
	// turned it into 206 or 416.
	filterStatus := status
	if x.preEnc != "" {
		x.hdrs = append(x.hdrs, "Content-Encoding: "...)
		x.hdrs = append(x.hdrs, x.preEnc...)
		x.hdrs = append(x.hdrs, "\r\n"...)
	}
	etagEnd := 0
	if loc.Etag {
		// nginx keeps ETag on error pages served from files too.
		x.hdrs = append(x.hdrs, "ETag: "...)
		x.hdrs = append(x.hdrs, f.ETag...)
		x.hdrs = append(x.hdrs, "\r\n"...)
		etagEnd = len(x.hdrs)
	}
	if loc.Expires.AppliesTo(status) {
		x.hdrs = loc.Expires.AppendHeaders(x.hdrs, c.clock(), f.ModTime)
	}
	off, n := int64(0), f.Size
	// A precompressed file is sent whole, without Accept-Ranges (as
	// nginx 1.22 does for gzip_static).
	if status == 200 && !gz && x.preEnc == "" {
		acceptRanges := true
		if rh := c.w.req.Header(hRange); rh != nil && static.IfRange(f, c.w.req.Header(hIfRange), loc.Etag) {
			ranges, st := static.ParseRange(rh, f.Size, x.ranges[:0])
			switch st {
			case 206:
				if len(ranges) == 1 {
					status = 206
					acceptRanges = false
					off, n = ranges[0].Start, ranges[0].Len()
					x.hdrs = append(x.hdrs, "Content-Range: "...)
					x.hdrs = static.AppendContentRange(x.hdrs, ranges[0], f.Size)
					x.hdrs = append(x.hdrs, "\r\n"...)
				}
				// Several ranges: served whole (multipart/byteranges
				// is not implemented yet; a full 200 is a valid answer).
			case 416:
				x.status = 416
				// nginx's 416 keeps Expires but not ETag.
				x.hdrs = append(x.hdrs[:0], x.hdrs[etagEnd:]...)
				x.hdrs = append(x.hdrs, "Content-Range: bytes */"...)
				x.hdrs = strconv.AppendInt(x.hdrs, f.Size, 10)
				x.hdrs = append(x.hdrs, "\r\n"...)
				body := http1.ErrorPageBody(416, loc.ServerTokens)
				h := head{status: 416, filterStatus: filterStatus, contentType: textHTML, contentLength: int64(len(body))}
				c.writeHead(&h)
				if !x.head {
					c.writeBody(body)
				}
				return
			}
		}
		if acceptRanges {
			x.hdrs = append(x.hdrs, "Accept-Ranges: bytes\r\n"...)
		}
	}
	x.status = status
	h := head{status: status, filterStatus: filterStatus, contentType: ctype, charset: true, contentLength: n, vary: gzVary}
	if status == 200 || status == 206 {
		h.lastModified = f.LastModified
	}
	if gz {
		data := f.Data
		if data == nil {
			var ok bool
			if data, ok = c.readWhole(f); !ok {
				c.finalize(500)
				return
			}
		}
		c.writeGzipped(&h, data)
		return
	}
	c.writeHead(&h)
	if x.head || n == 0 {
		return
	}
	if f.Data != nil {
		c.writeBody(f.Data[off : off+n])
		return
	}
	fd, err := f.OpenFD()
	if err != nil {
		// The head is out already: the only honest signal left is to
		// close the connection, as nginx does on a read error.
		c.closeNext = true
		c.phase = phaseClosing
		c.flush()
		c.t.Close()
		return
	}
	c.flush()
	c.phase = phaseSending
	c.deadline.Store(0)
	x.bodySent = n
	c.t.SendFile(fd, off, n)
}

var (
	hIfModifiedSince   = []byte("if-modified-since")
	hIfNoneMatch       = []byte("if-none-match")
	hIfMatch           = []byte("if-match")
	hIfUnmodifiedSince = []byte("if-unmodified-since")
	hRange             = []byte("range")
	hIfRange           = []byte("if-range")
)

// maxGzipFile is the largest file compressed on the fly (read whole into
// memory on the loop, as nginx's gzip filter reads it through its buffers).
const maxGzipFile = 16 << 20

// readWhole reads a file for compression into the exchange's buffer.
func (c *Conn) readWhole(f *static.File) ([]byte, bool) {
	x := &c.w.x
	fd, err := f.OpenFD()
	if err != nil {
		return nil, false
	}
	defer fd.Close()
	if int64(cap(x.fileBuf)) < f.Size {
		x.fileBuf = make([]byte, f.Size)
	}
	b := x.fileBuf[:f.Size]
	if _, err := io.ReadFull(fd, b); err != nil {
		return nil, false
	}
	return b, true
}

// Package http1 is edgeproxy's zero-allocation HTTP/1.x request-head
// parser, chunked body decoder and response-head helpers. Where nginx
// defines behaviour (request line and header syntax, URI normalisation,
// header buffer limits, error pages) it follows nginx 1.22; deliberate
// deviations are marked "stricter than nginx" with the reason.
package http1

import (
	"bytes"
	"math"
)

// Limits are the request-head size limits, with nginx's meaning. The zero
// value means nginx's defaults: client_header_buffer_size 1k,
// large_client_header_buffers 4 8k, ignore_invalid_headers on,
// underscores_in_headers off. A Limits is read-only during Parse and may be
// shared by all goroutines.
type Limits struct {
	// HeaderBufferSize is client_header_buffer_size (0 = 1024).
	HeaderBufferSize int
	// LargeBufferSize is the size of one large_client_header_buffers
	// buffer (0 = 8192). A request line longer than this is 414, a header
	// line longer than this is 400 "Request Header Or Cookie Too Large".
	LargeBufferSize int
	// LargeBuffers is the number of large buffers (0 = 4).
	LargeBuffers int
	// KeepInvalidHeaders is "ignore_invalid_headers off": header lines whose
	// name has characters other than letters, digits and '-' are kept
	// instead of being dropped silently (false = nginx default).
	KeepInvalidHeaders bool
	// UnderscoresInHeaders is "underscores_in_headers on" (false = nginx
	// default: a name containing '_' is an invalid header).
	UnderscoresInHeaders bool
	// MaxHeaders caps the number of kept header fields (0 = 1000: nginx
	// 1.22 answers 494 to the 1001st, measured; dropped invalid headers
	// do not count).
	MaxHeaders int
}

var defaultLimits Limits

func (l *Limits) sizes() (small, large, n int) {
	if l == nil {
		l = &defaultLimits
	}
	small, large, n = l.HeaderBufferSize, l.LargeBufferSize, l.LargeBuffers
	if small <= 0 {
		small = 1024
	}
	if large <= 0 {
		large = 8192
	}
	if n <= 0 {
		n = 4
	}
	// Offsets are int32; keep the whole head well inside that range.
	const maxHead = 1 << 28
	if small > maxHead {
		small = maxHead
	}
	if large > maxHead {
		large = maxHead
	}
	if n > maxHead/large {
		n = maxHead / large
	}
	return
}

// Method identifies well-known request methods. The zero value
// MethodUnknown means "not parsed yet".
type Method uint8

// Method identifiers; MethodOther is any other syntactically valid method.
const (
	MethodUnknown Method = iota
	MethodGET
	MethodHEAD
	MethodPOST
	MethodPUT
	MethodDELETE
	MethodOPTIONS
	MethodPATCH
	MethodTRACE
	MethodCONNECT
	MethodOther
)

// span is a [off, off+n) range in the parsed buffer (or, for the
// normalised path and the lowercased host, in a Request-owned buffer).
type span struct{ off, n int32 }

func (s span) of(b []byte) []byte { return b[s.off : s.off+s.n : s.off+s.n] }

type field struct{ name, value span }

// Known headers with special processing; bit positions in Request.seen.
const (
	hHost = iota
	hContentLength
	hTransferEncoding
	hExpect
	hIfModifiedSince
	hIfUnmodifiedSince
	hIfMatch
	hIfNoneMatch
	hContentRange
	hIfRange
	hAuthorization
	hConnection
	hUpgrade
	hOther
)

const (
	stStart   uint8 = iota // before the request line
	stHeaders              // request line done
	stDone                 // head complete (Parse returned n > 0)
	stFailed               // Parse returned an *Error
)

// Request is a parsed request head. It stores offsets into the buffer
// passed to Parse, never slices of it, so the bytes may be moved: after
// Rebase(newBuf) every accessor reads from newBuf. The zero value is an
// empty request ready for Parse. A Request is reusable (Reset keeps all
// capacity) and must be used by one goroutine at a time; accessors are
// meaningful only after Parse returned n > 0.
type Request struct {
	buf []byte

	st      uint8
	pos     int32 // start of the next unprocessed line
	scan    int32 // bytes of the current partial line already searched for LF
	bufIdx  int32 // packing model: 0 = client_header_buffer, 1.. = large
	bufOff  int32 // bytes used in the current model buffer
	headLen int32

	method   span
	methodID Method
	major    uint16
	minor    uint16
	target   span // raw request target as sent
	uri      span // $request_uri: target from the path on
	rawPath  span // path part of uri, before '?' or '#'
	args     span
	hasArgs  bool
	tHost    span // host[:port] from an absolute-form target
	hasTHost bool

	quoted, complex, emptyPath bool

	path        []byte // normalised path when it differs from rawPath
	pathOwned   bool
	pathChanged bool

	fields []field
	seen   uint16 // bit set per known header (hHost...) already received
	upgF   int32  // 1 + index in fields of the first Upgrade, 0 = none
	hostH  span   // raw Host header value
	teV    span   // Transfer-Encoding value
	clV    span   // Content-Length value
	expV   span   // Expect value

	host      span // validated host without port; in hostBuf if hostOwned
	hostPort  span
	hostOwned bool
	hasHost   bool
	hostBuf   []byte

	contentLength int64
	chunked       bool
	keepAlive     bool
	connClose     bool
	connKeep      bool
	expect100     bool
}

// Reset clears r for the next request, keeping allocated capacity.
func (r *Request) Reset() {
	fields, path, hostBuf := r.fields[:0], r.path[:0], r.hostBuf[:0]
	*r = Request{fields: fields, path: path, hostBuf: hostBuf}
}

// Parse parses the request head at the start of buf. buf must be the whole
// unconsumed input: after ErrNeedMore, call again with the same bytes
// followed by newly read ones (the bytes may have moved); Parse resumes
// where it stopped, so each byte is examined once. It returns the length of
// the head including the terminating empty line, ErrNeedMore, or an
// *Error. A call after a result other than ErrNeedMore starts a new
// request. Bytes after the head (the body, pipelined requests) are not
// looked at. lim may be nil (nginx defaults). Parse never allocates once
// r's buffers have grown to fit.
func (r *Request) Parse(buf []byte, lim *Limits) (n int, err error) {
	if r.st >= stDone || int(r.pos) > len(buf) || int(r.scan) > len(buf) {
		r.Reset()
	}
	if lim == nil {
		lim = &defaultLimits
	}
	r.buf = buf
	small, large, nlarge := lim.sizes()
	for {
		rest := buf[r.pos:]
		from := r.scan - r.pos
		i := bytes.IndexByte(rest[from:], '\n')
		if i < 0 {
			// Enforce the limits before the line is complete, like
			// nginx does when its buffer fills; otherwise a client could
			// make us wait forever for an endless line.
			if len(rest) > math.MaxInt32/2 {
				rest = rest[:math.MaxInt32/2]
			}
			if room, ok := r.fit(len(rest)+1, small, large, nlarge, false); !ok && room <= len(rest) {
				return 0, r.fail(r.overflow(rest[:room]))
			}
			r.scan = r.pos + int32(len(rest))
			return 0, ErrNeedMore
		}
		i += int(from)
		lineLen := i + 1
		if room, ok := r.fit(lineLen, small, large, nlarge, true); !ok {
			return 0, r.fail(r.overflow(rest[:room]))
		}
		line := rest[:i]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		base := r.pos
		r.pos += int32(lineLen)
		r.scan = r.pos
		if r.st == stStart {
			if len(line) == 0 {
				// RFC 9112 §2.2 / ngx_http_parse_request_line sw_start:
				// empty lines before the request line are ignored.
				continue
			}
			if e := r.requestLine(line, base, true); e != nil {
				return 0, r.fail(e)
			}
			r.st = stHeaders
			continue
		}
		if len(line) == 0 {
			if e := r.finish(); e != nil {
				return 0, r.fail(e)
			}
			r.st = stDone
			r.headLen = r.pos
			return int(r.pos), nil
		}
		if e := r.headerLine(line, base, true, lim); e != nil {
			return 0, r.fail(e)
		}
	}
}

func (r *Request) fail(e *Error) error {
	r.st = stFailed
	return e
}

// fit models nginx's header buffers (ngx_http_alloc_large_header_buffer):
// the head is read into a client_header_buffer_size buffer; a line that
// does not fit in the rest of the current buffer is moved whole into the
// next large buffer; the move fails if the line already fills a large
// buffer or all large buffers are used. For a complete line of length l,
// it commits the placement and reports true, or reports false and how many
// bytes of the line nginx would have parsed before giving up. For a partial
// line (l = bytes so far + 1) it only checks, without committing.
func (r *Request) fit(l, small, large, nlarge int, commit bool) (room int, ok bool) {
	idx, off := int(r.bufIdx), int(r.bufOff)
	size := small
	if idx > 0 {
		size = large
	}
	if off+l <= size {
		if commit {
			r.bufOff = int32(off + l)
		}
		return l, true
	}
	partial := size - off
	if partial >= large || idx >= nlarge {
		return partial, false
	}
	if l > large {
		return large, false
	}
	if commit {
		r.bufIdx, r.bufOff = int32(idx+1), int32(l)
	}
	return l, true
}

// overflow picks the error for a line that did not fit: like nginx, a
// syntax error seen in the bytes parsed before the buffer ran out wins
// over the size error.
func (r *Request) overflow(prefix []byte) *Error {
	// A CR that ends the parsed bytes may be the first half of CRLF.
	if len(prefix) > 0 && prefix[len(prefix)-1] == '\r' {
		prefix = prefix[:len(prefix)-1]
	}
	if r.st == stStart {
		// Leading empty lines are skipped: nginx does not count them as
		// part of the request line.
		p := prefix
		for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
			p = p[1:]
		}
		if len(p) > 0 {
			var tmp Request
			if e := tmp.requestLine(p, 0, false); e != nil {
				return e
			}
		}
		return ErrURITooLong
	}
	if len(prefix) > 0 {
		var tmp Request
		if e := tmp.headerLine(prefix, 0, false, &defaultLimits); e != nil {
			return e
		}
	}
	return ErrHeaderTooLarge
}

// Rebase points r at newBuf, which must hold the same head bytes as the
// buffer given to Parse (for example after the engine copied borrowed bytes
// into its own buffer). All accessors then read from newBuf.
func (r *Request) Rebase(newBuf []byte) { r.buf = newBuf }

// HeadBytes returns the raw request head including the final empty line.
func (r *Request) HeadBytes() []byte { return r.buf[:r.headLen:r.headLen] }

// Method returns the method as sent ("GET").
func (r *Request) Method() []byte { return r.method.of(r.buf) }

// MethodID returns the method identifier (MethodOther for others).
func (r *Request) MethodID() Method { return r.methodID }

// Target returns the raw request target exactly as sent, including the
// scheme and authority of an absolute-form target.
func (r *Request) Target() []byte { return r.target.of(r.buf) }

// URI returns nginx's $request_uri: the raw request target as sent,
// starting at the path (for "GET http://h/p?q" it is "/p?q"; for
// "GET http://h" it is "/").
func (r *Request) URI() []byte { return r.uri.of(r.buf) }

// Path returns nginx's $uri: the percent-decoded path normalised like
// ngx_http_parse_complex_uri with merge_slashes on. It always starts with
// '/'. The slice is owned by r (or points into the buffer) and is valid
// until the next Parse or Reset.
func (r *Request) Path() []byte {
	if r.emptyPath {
		return slashPath
	}
	if r.pathOwned {
		return r.path
	}
	return r.rawPath.of(r.buf)
}

var slashPath = []byte("/")

// RawPath returns the path part of URI() as sent (before '?' or '#').
func (r *Request) RawPath() []byte {
	if r.emptyPath {
		return slashPath
	}
	return r.rawPath.of(r.buf)
}

// PathChanged reports whether Path differs from RawPath (percent-decoding,
// slash merging or dot-segment removal changed something).
func (r *Request) PathChanged() bool { return r.pathChanged }

// Args returns nginx's $args: the raw query after the first '?' up to any
// '#', or nil.
func (r *Request) Args() []byte {
	if !r.hasArgs {
		return nil
	}
	return r.args.of(r.buf)
}

// Arg returns nginx's $arg_NAME: the raw value of the first "name=" in
// Args, name compared case-insensitively (ngx_http_arg), and whether found.
func (r *Request) Arg(name []byte) ([]byte, bool) {
	args := r.Args()
	if len(name) == 0 {
		return nil, false
	}
	for p := 0; p+len(name) < len(args); {
		if (p == 0 || args[p-1] == '&') && args[p+len(name)] == '=' && equalFold(args[p:p+len(name)], name) {
			v := args[p+len(name)+1:]
			if j := bytes.IndexByte(v, '&'); j >= 0 {
				v = v[:j]
			}
			return v, true
		}
		j := bytes.IndexByte(args[p:], '&')
		if j < 0 {
			break
		}
		p += j + 1
	}
	return nil, false
}

// Proto returns the HTTP version numbers (1, 0) or (1, 1); minor may be
// larger (nginx accepts HTTP/1.2 ... HTTP/1.999 and treats them as 1.1).
func (r *Request) Proto() (major, minor int) { return int(r.major), int(r.minor) }

// Host returns nginx's $host without the fallback to server_name: the host
// from an absolute-form target if present, else from the Host header,
// lowercased, without port and trailing dot; nil if there is neither.
func (r *Request) Host() []byte {
	if !r.hasHost {
		return nil
	}
	if r.hostOwned {
		return r.hostBuf
	}
	return r.host.of(r.buf)
}

// HostPort returns the raw text after the ':' that ends the host part of
// the source Host() came from (empty if none).
func (r *Request) HostPort() []byte {
	if !r.hasHost {
		return nil
	}
	return r.hostPort.of(r.buf)
}

// Header returns the value of the first header named name (ASCII
// case-insensitive), with surrounding whitespace removed, or nil.
func (r *Request) Header(name []byte) []byte {
	for _, f := range r.fields {
		if equalFold(f.name.of(r.buf), name) {
			return f.value.of(r.buf)
		}
	}
	return nil
}

// NumHeaders returns the number of kept header fields.
func (r *Request) NumHeaders() int { return len(r.fields) }

// HeaderAt returns the i-th kept header field in order of arrival (name as
// sent, value trimmed). Invalid header lines dropped per Limits are not
// counted.
func (r *Request) HeaderAt(i int) (name, value []byte) {
	f := r.fields[i]
	return f.name.of(r.buf), f.value.of(r.buf)
}

// VisitHeaders calls fn for each kept header in order until fn returns
// false.
func (r *Request) VisitHeaders(fn func(name, value []byte) bool) {
	for _, f := range r.fields {
		if !fn(f.name.of(r.buf), f.value.of(r.buf)) {
			return
		}
	}
}

// ContentLength returns the Content-Length value, or -1 if absent.
func (r *Request) ContentLength() int64 { return r.contentLength }

// Chunked reports "Transfer-Encoding: chunked".
func (r *Request) Chunked() bool { return r.chunked }

// KeepAlive reports whether the connection may be reused: for HTTP/1.1
// unless a Connection header has the "close" token, for HTTP/1.0 only
// with a "keep-alive" token.
func (r *Request) KeepAlive() bool { return r.keepAlive }

// Expect100 reports "Expect: 100-continue" on an HTTP/1.1 request.
func (r *Request) Expect100() bool { return r.expect100 }

// Upgrade returns the value of the first Upgrade header, or nil.
func (r *Request) Upgrade() []byte {
	if r.upgF == 0 {
		return nil
	}
	return r.fields[r.upgF-1].value.of(r.buf)
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func equalFoldStr(a []byte, s string) bool {
	if len(a) != len(s) {
		return false
	}
	for i := range a {
		if lower(a[i]) != s[i] {
			return false
		}
	}
	return true
}

package http1

// headerLine parses one header line (without its terminator) starting at
// offset base of r.buf, following ngx_http_parse_header_line, and applies
// the per-header processing of ngx_http_headers_in. With complete ==
// false only syntax errors inside the given prefix are reported.
func (r *Request) headerLine(line []byte, base int32, complete bool, lim *Limits) *Error {
	n := len(line)
	invalid := false
	// The first byte may not be whitespace: that is obs-fold (RFC 9112
	// §5.2), which nginx also refuses, or an empty name.
	c := line[0]
	if c <= 0x20 || c == 0x7f || c == ':' {
		return hdrCtlErr(c)
	}
	i := 0
	for ; i < n; i++ {
		c = line[i]
		if c == ':' {
			break
		}
		if isTokenLower(c) {
			continue
		}
		if c == '_' {
			if !lim.UnderscoresInHeaders {
				invalid = true
			}
			continue
		}
		// Whitespace before the colon is 400 (RFC 9112 §5.1; nginx
		// too): "Transfer-Encoding : chunked" must not be half-honoured.
		if c <= 0x20 || c == 0x7f {
			return hdrCtlErr(c)
		}
		invalid = true
	}
	if i == n {
		if !complete {
			return nil
		}
		// Stricter than nginx, which takes "Foo" as an empty header:
		// a line without a colon is not a field line (RFC 9112 §5) and
		// a proxy that guesses can desynchronise with its upstream.
		return ErrInvalidHeader
	}
	nameEnd := i
	i++
	// OWS = *( SP / HTAB ) around the value (RFC 9110 §5.6.3). nginx 1.22
	// skips only SP before the value; see the differential tests.
	for i < n && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	vs := i
	ve := i
	for ; i < n; i++ {
		c = line[i]
		switch c {
		case ' ', '\t':
		case 0:
			return ErrNUL
		case '\r':
			// A CR not followed by LF (RFC 9112 §2.2); nginx refuses it
			// too, except "\r\r\n", which we also refuse.
			return ErrBareCR
		default:
			ve = i + 1
		}
	}
	if !complete {
		return nil
	}
	if invalid && !lim.KeepInvalidHeaders {
		// ignore_invalid_headers on: dropped silently.
		return nil
	}
	maxH := lim.MaxHeaders
	if maxH <= 0 {
		maxH = 1000
	}
	if len(r.fields) >= maxH {
		return ErrHeaderTooLarge
	}
	name := span{base, int32(nameEnd)}
	value := span{base + int32(vs), int32(ve - vs)}
	r.fields = append(r.fields, field{name, value})
	return r.known(line[:nameEnd], value, len(r.fields))
}

func hdrCtlErr(c byte) *Error {
	switch c {
	case 0:
		return ErrNUL
	case '\r':
		return ErrBareCR
	}
	return ErrInvalidHeader
}

// isTokenLower is nginx's lowcase[] table: the name bytes that are
// always valid (letters, digits, '-').
func isTokenLower(c byte) bool {
	l := c | 0x20
	return l >= 'a' && l <= 'z' || c >= '0' && c <= '9' || c == '-'
}

// known applies ngx_http_headers_in processing. The headers nginx 1.22
// handles with ngx_http_process_unique_header_line (or Host) are 400
// when repeated; checked against nginx in the differential tests.
func (r *Request) known(name []byte, v span, idx int) *Error {
	h := hOther
	switch len(name) {
	case 4:
		if equalFoldStr(name, "host") {
			h = hHost
		}
	case 6:
		if equalFoldStr(name, "expect") {
			h = hExpect
		}
	case 7:
		if equalFoldStr(name, "upgrade") {
			h = hUpgrade
		}
	case 8:
		if equalFoldStr(name, "if-match") {
			h = hIfMatch
		} else if equalFoldStr(name, "if-range") {
			h = hIfRange
		}
	case 10:
		if equalFoldStr(name, "connection") {
			h = hConnection
		}
	case 13:
		if equalFoldStr(name, "if-none-match") {
			h = hIfNoneMatch
		} else if equalFoldStr(name, "content-range") {
			h = hContentRange
		} else if equalFoldStr(name, "authorization") {
			h = hAuthorization
		}
	case 14:
		if equalFoldStr(name, "content-length") {
			h = hContentLength
		}
	case 17:
		if equalFoldStr(name, "if-modified-since") {
			h = hIfModifiedSince
		} else if equalFoldStr(name, "transfer-encoding") {
			h = hTransferEncoding
		}
	case 19:
		if equalFoldStr(name, "if-unmodified-since") {
			h = hIfUnmodifiedSince
		}
	}
	switch h {
	case hOther:
		return nil
	case hConnection:
		r.connectionTokens(v.of(r.buf))
		return nil
	case hUpgrade:
		if r.upgF == 0 {
			r.upgF = int32(idx)
		}
		return nil
	}
	if r.seen&(1<<h) != 0 {
		return ErrDuplicateHeader
	}
	r.seen |= 1 << h
	switch h {
	case hHost:
		r.hostH = v
		// ngx_http_process_host validates the header even when the
		// request line had a host, which then takes precedence.
		if r.hasTHost {
			if _, _, ok := validateHost(v.of(r.buf)); !ok {
				return ErrInvalidHost
			}
			return nil
		}
		return r.setHost(v)
	case hContentLength:
		r.clV = v
	case hTransferEncoding:
		r.teV = v
	case hExpect:
		r.expV = v
	}
	return nil
}

// connectionTokens records the "close" and "keep-alive" tokens of a
// Connection header (RFC 9110 §7.6.1). nginx matches substrings; tokens
// are the same for every real client and do not misfire on names like
// "x-close-notify".
func (r *Request) connectionTokens(v []byte) {
	for len(v) > 0 {
		j := 0
		for j < len(v) && v[j] != ',' {
			j++
		}
		t := trimOWS(v[:j])
		if equalFoldStr(t, "close") {
			r.connClose = true
		} else if equalFoldStr(t, "keep-alive") {
			r.connKeep = true
		}
		if j == len(v) {
			break
		}
		v = v[j+1:]
	}
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validateHost is ngx_http_validate_host: it returns the length of the
// host part (port and one trailing dot removed), the offset where the
// port text starts (len(h) if none), and whether the host is acceptable.
func validateHost(h []byte) (hostLen, portOff int, ok bool) {
	const (
		sUsual = iota
		sLiteral
		sRest
	)
	dot := -2
	hostLen = len(h)
	portOff = len(h)
	state := sUsual
	for i, c := range h {
		switch c {
		case '.':
			if dot == i-1 {
				return 0, 0, false // ".."
			}
			dot = i
		case ':':
			if state == sUsual {
				hostLen = i
				portOff = i + 1
				state = sRest
			}
		case '[':
			if i == 0 {
				state = sLiteral
			}
		case ']':
			if state == sLiteral {
				hostLen = i + 1
				if i+1 < len(h) && h[i+1] == ':' {
					portOff = i + 2
				} else {
					portOff = i + 1
				}
				state = sRest
			}
		default:
			if c == '/' || c <= 0x20 || c == 0x7f {
				return 0, 0, false
			}
		}
	}
	if dot == hostLen-1 {
		hostLen--
	}
	if hostLen <= 0 {
		return 0, 0, false
	}
	if portOff > len(h) {
		portOff = len(h)
	}
	return hostLen, portOff, true
}

// setHost validates s and makes it the source of Host(), lowercasing into
// r.hostBuf only when needed.
func (r *Request) setHost(s span) *Error {
	b := s.of(r.buf)
	hl, po, ok := validateHost(b)
	if !ok {
		return ErrInvalidHost
	}
	r.hasHost = true
	r.host = span{s.off, int32(hl)}
	r.hostPort = span{s.off + int32(po), s.n - int32(po)}
	r.hostOwned = false
	for _, c := range b[:hl] {
		if c >= 'A' && c <= 'Z' {
			r.hostBuf = r.hostBuf[:0]
			for _, c := range b[:hl] {
				r.hostBuf = append(r.hostBuf, lower(c))
			}
			r.hostOwned = true
			break
		}
	}
	return nil
}

// finish is ngx_http_process_request_header: checks that need the whole
// head, in nginx's order (so a request with several problems gets the
// same status as from nginx).
func (r *Request) finish() *Error {
	v11 := r.major > 1 || r.major == 1 && r.minor >= 1
	if r.seen&(1<<hHost) == 0 && v11 {
		return ErrNoHost
	}
	r.contentLength = -1
	if r.seen&(1<<hContentLength) != 0 {
		n, ok := parseContentLength(r.clV.of(r.buf))
		if !ok {
			return ErrContentLength
		}
		r.contentLength = n
	}
	if r.seen&(1<<hTransferEncoding) != 0 {
		if !v11 {
			// A 1.0 recipient cannot know chunked (RFC 9112 §6.1); nginx
			// refuses the request as a smuggling attempt.
			return ErrTEOnHTTP10
		}
		if !equalFoldStr(r.teV.of(r.buf), "chunked") {
			return ErrNotImplemented
		}
		if r.contentLength >= 0 {
			// RFC 9112 §6.3: a proxy must not forward both; nginx 400s.
			return ErrCLAndTE
		}
		r.chunked = true
	}
	switch {
	case r.connClose:
		r.keepAlive = false
	case r.connKeep:
		r.keepAlive = true
	default:
		r.keepAlive = v11
	}
	r.expect100 = v11 && r.seen&(1<<hExpect) != 0 && equalFoldStr(r.expV.of(r.buf), "100-continue")
	if r.methodID == MethodTRACE || r.methodID == MethodCONNECT {
		return ErrMethodNotAllowed
	}
	return nil
}

// parseContentLength is ngx_atoof: one or more digits, no sign, no list,
// no overflow of int64.
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	const cutoff, cutlim = (1<<63 - 1) / 10, (1<<63 - 1) % 10
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > cutoff || n == cutoff && d > cutlim {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

package http1

// requestLine parses the request line (without its line terminator) that
// starts at offset base of r.buf. With complete == false, line is only the
// prefix nginx would have seen before its buffer ran out: running off its
// end is not an error, so the result is an error only if the prefix
// already contains one. The grammar follows ngx_http_parse_request_line.
func (r *Request) requestLine(line []byte, base int32, complete bool) *Error {
	n := len(line)
	i := 0
	// method = 1*( "A"-"Z" / "_" / "-" )   (ngx_http_parse_request_line
	// sw_start/sw_method; lowercase methods are 400 there too).
	for i < n && isMethodChar(line[i]) {
		i++
	}
	if i == n {
		if !complete {
			return nil
		}
		return ErrInvalidMethod
	}
	if i == 0 || line[i] != ' ' {
		return ErrInvalidMethod
	}
	r.method = span{base, int32(i)}
	r.methodID = methodID(line[:i])
	for i < n && line[i] == ' ' {
		i++
	}
	if i == n {
		if !complete {
			return nil
		}
		return ErrBadRequest
	}
	ts := i
	switch c := line[i]; {
	case c == '/':
		r.uri.off = base + int32(i)
	case lower(c) >= 'a' && lower(c) <= 'z':
		// absolute-form: scheme "://" host [":" port]
		for i < n && isSchemeChar(line[i]) {
			i++
		}
		schemeEnd := i
		for _, want := range [3]byte{':', '/', '/'} {
			if i == n {
				if !complete {
					return nil
				}
				return ErrBadRequest
			}
			if line[i] != want {
				return ErrBadRequest
			}
			i++
		}
		hs := i
		if i < n && line[i] == '[' {
			// IP-literal, sw_host_ip_literal.
			i++
			for i < n && line[i] != ']' {
				if !isIPLiteralChar(line[i]) {
					return ErrBadRequest
				}
				i++
			}
			if i < n {
				i++
			}
		} else {
			for i < n && isHostChar(line[i]) {
				i++
			}
		}
		if i < n && line[i] == ':' {
			i++
			for i < n && line[i] >= '0' && line[i] <= '9' {
				i++
			}
		}
		if i == n {
			if !complete {
				return nil
			}
			return ErrBadRequest
		}
		r.tHost = span{base + int32(hs), int32(i - hs)}
		r.hasTHost = true
		switch line[i] {
		case '/':
			r.uri.off = base + int32(i)
		case '?':
			r.uri.off = base + int32(i)
			r.emptyPath = true
		case ' ':
			// ngx: "use single '/' from request line" - $request_uri is
			// the first '/' of "://".
			r.emptyPath = true
			r.uri = span{base + int32(schemeEnd) + 1, 1}
			r.rawPath = span{r.uri.off, 0}
			r.target = span{base + int32(ts), int32(i - ts)}
			return r.version(line, i, complete)
		default:
			return ErrBadRequest
		}
	default:
		// "*" (asterisk-form) and authority-form are 400 in nginx 1.22.
		return ErrBadRequest
	}

	// The path and query. Controls and DEL are 400 (nginx sw_check_uri);
	// bytes >= 0x80 are allowed like nginx. Record what
	// ngx_http_parse_complex_uri will have to do.
	us := i
	q, hash := -1, -1
	prev := byte(0)
	for ; i < n; i++ {
		c := line[i]
		if c <= 0x20 || c == 0x7f {
			if c == ' ' {
				break
			}
			if c == 0 {
				return ErrNUL
			}
			if c == '\r' {
				return ErrBareCR
			}
			return ErrBadRequest
		}
		if q < 0 && hash < 0 {
			switch c {
			case '?':
				q = i
			case '#':
				hash = i
			case '%':
				r.quoted = true
			case '.', '/':
				if prev == '/' {
					r.complex = true
				}
			}
		} else if c == '#' && hash < 0 {
			hash = i
		}
		prev = c
	}
	if i == n {
		if !complete {
			return nil
		}
		// No "HTTP/x.y": an HTTP/0.9 simple request. nginx serves it;
		// we refuse it on purpose - a 0.9 response has no status line or
		// headers, so it cannot carry our framing.
		return ErrHTTP09
	}
	r.target = span{base + int32(ts), int32(i - ts)}
	r.uri.n = base + int32(i) - r.uri.off
	pathEnd := i
	if q >= 0 {
		pathEnd = q
		r.hasArgs = true
		ae := i
		if hash > q {
			ae = hash
		}
		r.args = span{base + int32(q) + 1, int32(ae - q - 1)}
	}
	if hash >= 0 && (q < 0 || hash < q) {
		pathEnd = hash
		r.complex = true
	}
	r.rawPath = span{base + int32(us), int32(pathEnd - us)}
	if r.emptyPath {
		r.rawPath.n = 0
	}
	return r.version(line, i, complete)
}

// version parses ` +HTTP/major.minor *` at line[i:] (line[i] == ' ').
func (r *Request) version(line []byte, i int, complete bool) *Error {
	n := len(line)
	for i < n && line[i] == ' ' {
		i++
	}
	end := func() *Error {
		if !complete {
			return nil
		}
		return ErrBadRequest
	}
	if i == n {
		if !complete {
			return nil
		}
		return ErrHTTP09 // "GET / " is 0.9 for nginx too
	}
	for _, want := range [5]byte{'H', 'T', 'T', 'P', '/'} {
		if i == n {
			return end()
		}
		if line[i] != want {
			return ErrBadRequest
		}
		i++
	}
	// major: nginx sw_first_major_digit / sw_major_digit. A major above 1
	// is 505 as soon as it is seen ("HTTP/2.0", "HTTP/10.0").
	if i == n {
		return end()
	}
	if line[i] < '1' || line[i] > '9' {
		return ErrBadRequest
	}
	major := int(line[i] - '0')
	if major > 1 {
		return ErrVersion
	}
	i++
	for {
		if i == n {
			return end()
		}
		c := line[i]
		if c == '.' {
			i++
			break
		}
		if c < '0' || c > '9' {
			return ErrBadRequest
		}
		major = major*10 + int(c-'0')
		if major > 1 {
			return ErrVersion
		}
		i++
	}
	if i == n {
		return end()
	}
	if line[i] < '0' || line[i] > '9' {
		return ErrBadRequest
	}
	minor := int(line[i] - '0')
	i++
	for ; i < n && line[i] != ' '; i++ {
		c := line[i]
		if c < '0' || c > '9' {
			if c == 0 {
				return ErrNUL
			}
			if c == '\r' {
				return ErrBareCR
			}
			return ErrBadRequest
		}
		if minor > 99 { // nginx: at most three minor digits
			return ErrBadRequest
		}
		minor = minor*10 + int(c-'0')
	}
	for ; i < n; i++ {
		if line[i] != ' ' {
			return ErrBadRequest
		}
	}
	r.major, r.minor = uint16(major), uint16(minor)
	if !complete {
		return nil
	}
	return r.afterRequestLine()
}

// afterRequestLine does what ngx_http_process_request_line does once the
// line is parsed: validate the request-line host and normalise the URI.
func (r *Request) afterRequestLine() *Error {
	if r.hasTHost {
		if e := r.setHost(r.tHost); e != nil {
			return e
		}
	}
	if r.emptyPath {
		r.pathChanged = true
		return nil
	}
	if r.quoted || r.complex {
		raw := r.rawPath.of(r.buf)
		p, ok := normalizePath(r.path[:0], r.uri.of(r.buf))
		r.path = p
		if !ok {
			return ErrInvalidPath
		}
		r.pathOwned = true
		r.pathChanged = string(p) != string(raw)
	}
	return nil
}

func isMethodChar(c byte) bool { return c >= 'A' && c <= 'Z' || c == '_' || c == '-' }

func isSchemeChar(c byte) bool {
	l := lower(c)
	return l >= 'a' && l <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isHostChar(c byte) bool {
	l := lower(c)
	return l >= 'a' && l <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

// isIPLiteralChar is nginx's sw_host_ip_literal set: unreserved,
// sub-delims and ':'.
func isIPLiteralChar(c byte) bool {
	l := lower(c)
	if l >= 'a' && l <= 'z' || c >= '0' && c <= '9' {
		return true
	}
	switch c {
	case ':', '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

func methodID(m []byte) Method {
	switch string(m) {
	case "GET":
		return MethodGET
	case "HEAD":
		return MethodHEAD
	case "POST":
		return MethodPOST
	case "PUT":
		return MethodPUT
	case "DELETE":
		return MethodDELETE
	case "OPTIONS":
		return MethodOPTIONS
	case "PATCH":
		return MethodPATCH
	case "TRACE":
		return MethodTRACE
	case "CONNECT":
		return MethodCONNECT
	}
	return MethodOther
}

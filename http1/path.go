package http1

// usual is nginx's "usual" table (ngx_http_parse.c): bytes that need no
// attention in a URI. Not usual: controls, ' ', '#', '%', '+', '.', '/',
// '?', DEL. '+' is listed by nginx only to flag plus_in_uri; it is copied.
var usual = [8]uint32{
	0x00000000, // 0x00-0x1f
	0x7fff37d6, // ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!
	0xffffffff, // _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@  ('\\' is usual off Windows)
	0x7fffffff, //  ~}| {zyx wvut srqp  onml kjih gfed cba`
	0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
}

func isUsual(c byte) bool { return usual[c>>5]&(1<<(c&0x1f)) != 0 }

// normalizePath is ngx_http_parse_complex_uri with merge_slashes on, for a
// non-Windows build. uri is the raw request URI (path and query; it starts
// with '/'). It appends the decoded, normalised path to dst: "%XX" decoded
// (a decoded '/' or '.' takes part in the normalisation, so "%2e%2e" is
// ".."), "//" merged, "/./" removed, "/../" resolved. ok is false for a
// malformed escape, a "%00", or ".." above the root - all 400 in nginx.
// The path ends at the first literal '?' or '#'.
func normalizePath(dst, uri []byte) (path []byte, ok bool) {
	const (
		sUsual = iota
		sSlash
		sDot
		sDotDot
		sQuoted
		sQuotedSecond
	)
	u := dst[:0]
	if len(uri) == 0 {
		return u, false
	}
	state, quotedState := sUsual, sUsual
	var decoded byte
	// p is nginx's p: index of the byte after ch. Reading past the end
	// yields a terminator that the loop condition never lets through
	// (nginx relies on the SP/CR/LF that always follows the URI).
	p := 0
	next := func() byte {
		var c byte
		if p < len(uri) {
			c = uri[p]
		}
		p++
		return c
	}
	ch := next()
	// dotdot backs u up to the previous segment: u ends with "/..";
	// nginx does "u -= 4" then searches back for '/'.
	dotdot := func() bool {
		w := len(u) - 4
		for {
			if w < 0 {
				return false
			}
			if u[w] == '/' {
				u = u[:w+1]
				return true
			}
			w--
		}
	}
loop:
	for p <= len(uri) {
		switch state {
		case sUsual:
			if isUsual(ch) {
				u = append(u, ch)
				ch = next()
				continue
			}
			switch ch {
			case '/':
				state = sSlash
				u = append(u, ch)
			case '%':
				quotedState = state
				state = sQuoted
			case '?', '#':
				break loop
			default:
				u = append(u, ch)
			}
			ch = next()

		case sSlash:
			if isUsual(ch) {
				state = sUsual
				u = append(u, ch)
				ch = next()
				continue
			}
			switch ch {
			case '/': // merge_slashes
			case '.':
				state = sDot
				u = append(u, ch)
			case '%':
				quotedState = state
				state = sQuoted
			case '?', '#':
				break loop
			default:
				state = sUsual
				u = append(u, ch)
			}
			ch = next()

		case sDot:
			if isUsual(ch) {
				state = sUsual
				u = append(u, ch)
				ch = next()
				continue
			}
			switch ch {
			case '/':
				state = sSlash
				u = u[:len(u)-1]
			case '.':
				state = sDotDot
				u = append(u, ch)
			case '%':
				quotedState = state
				state = sQuoted
			case '?', '#':
				u = u[:len(u)-1]
				return u, true
			default:
				state = sUsual
				u = append(u, ch)
			}
			ch = next()

		case sDotDot:
			if isUsual(ch) {
				state = sUsual
				u = append(u, ch)
				ch = next()
				continue
			}
			switch ch {
			case '/', '?', '#':
				if !dotdot() {
					return u, false
				}
				if ch != '/' {
					return u, true
				}
				state = sSlash
			case '%':
				quotedState = state
				state = sQuoted
			default:
				state = sUsual
				u = append(u, ch)
			}
			ch = next()

		case sQuoted:
			if h, ok := unhex(ch); ok {
				decoded = h
				state = sQuotedSecond
				ch = next()
				continue
			}
			return u, false

		case sQuotedSecond:
			h, ok := unhex(ch)
			if !ok {
				return u, false
			}
			ch = decoded<<4 | h
			// A decoded '%', '#' or '?' is data, not syntax; "%00" is
			// refused because NUL cannot be passed to the file system.
			switch ch {
			case 0:
				return u, false
			case '%', '#', '?':
				state = sUsual
				u = append(u, ch)
				ch = next()
				continue
			}
			// Re-examine the decoded byte in the state before '%', so
			// "%2F" is a slash and "%2e" a dot.
			state = quotedState
		}
	}
	switch state {
	case sQuoted, sQuotedSecond:
		return u, false
	case sDot:
		u = u[:len(u)-1]
	case sDotDot:
		if !dotdot() {
			return u, false
		}
	}
	return u, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return c | 0x20 - 'a' + 10, true
	}
	return 0, false
}

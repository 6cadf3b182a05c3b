package pipeline

import (
	"strconv"

	"edgeproxy/snapshot"
)

// logRequest writes the access-log lines of the finished request
// (ngx_http_log_handler), for the location that produced the response.
// When defer_ is set (a sendfile is still running) the line is kept in the
// Conn and written when the transfer ends.
func (c *Conn) logRequest(deferred bool) {
	x := &c.w.x
	loc := x.loc
	if loc == nil {
		return
	}
	if loc.Stats != nil {
		// Counted where nginx logs: once per request, for the location that
		// produced the response, with $status and $request_time.
		loc.Stats.Observe(c.mshard, x.status, c.clock().Sub(c.reqStart))
	}
	if x.cacheStatus != "" && c.call.cache.zone != nil {
		c.call.cache.zone.CountResponse(c.call.cache.hash, x.cacheStatus)
	}
	if loc.AccessOff || len(loc.AccessLogs) == 0 {
		return
	}
	for i := range loc.AccessLogs {
		al := &loc.AccessLogs[i]
		if al.If != nil {
			x.scratch = c.eval(x.scratch[:0], al.If)
			if len(x.scratch) == 0 || len(x.scratch) == 1 && x.scratch[0] == '0' {
				continue
			}
		}
		line := c.evalLog(x.logBuf[:0], al.Format)
		line = append(line, '\n')
		x.logBuf = line
		if deferred {
			c.pendingLog = append(c.pendingLog, pendingLine{file: al.File, off: len(c.pendingBuf), n: len(line)})
			c.pendingBuf = append(c.pendingBuf, line...)
			continue
		}
		al.File.Write(line)
	}
}

// pendingLine is an access-log line waiting for its sendfile to finish.
type pendingLine struct {
	file interface{ Write([]byte) }
	off  int
	n    int
}

// flushPendingLog writes lines deferred by a sendfile.
func (c *Conn) flushPendingLog() {
	for _, p := range c.pendingLog {
		p.file.Write(c.pendingBuf[p.off : p.off+p.n])
	}
	c.pendingLog = c.pendingLog[:0]
	c.pendingBuf = c.pendingBuf[:0]
}

// evalLog evaluates a log_format with its escaping: every variable value
// is escaped, empty ones are written as "-" (as nginx does for values that
// are not found), literals are copied as they are.
func (c *Conn) evalLog(dst []byte, f *snapshot.LogFormat) []byte {
	x := &c.w.x
	for i := range f.Tmpl.Segs {
		s := &f.Tmpl.Segs[i]
		if s.Var == snapshot.VarNone {
			dst = append(dst, s.Lit...)
			continue
		}
		x.varBuf = c.logVar(x.varBuf[:0], s)
		v := x.varBuf
		if len(v) == 0 {
			if f.Escape != snapshot.EscapeJSON && !foundWhenEmpty(s.Var) {
				dst = append(dst, '-')
			}
			continue
		}
		switch f.Escape {
		case snapshot.EscapeNone:
			dst = append(dst, v...)
		case snapshot.EscapeJSON:
			dst = appendJSONEscaped(dst, v)
		default:
			dst = appendLogEscaped(dst, v)
		}
	}
	return dst
}

// logVar adds the variables that only exist at log time.
func (c *Conn) logVar(dst []byte, s *snapshot.Seg) []byte {
	x := &c.w.x
	switch s.Var {
	case snapshot.VarBodyBytesSent:
		return strconv.AppendInt(dst, x.bodySent, 10)
	case snapshot.VarBytesSent:
		return strconv.AppendInt(dst, x.headSent+x.bodySent, 10)
	case snapshot.VarRequestTime:
		d := c.clock().Sub(c.reqStart)
		ms := d.Milliseconds()
		dst = strconv.AppendInt(dst, ms/1000, 10)
		dst = append(dst, '.')
		r := ms % 1000
		return append(dst, byte('0'+r/100), byte('0'+r/10%10), byte('0'+r%10))
	case snapshot.VarRequestLength:
		return strconv.AppendInt(dst, int64(len(c.w.req.HeadBytes()))+c.reqBodyLen, 10)
	case snapshot.VarPipe:
		if c.pipelined {
			return append(dst, 'p')
		}
		return append(dst, '.')
	case snapshot.VarRemoteUser:
		return appendRemoteUser(dst, c.w.req.Header(hAuthorization))
	case snapshot.VarGzipRatio:
		return dst
	}
	return c.appendVar(dst, s)
}

var hAuthorization = []byte("authorization")

// appendRemoteUser decodes the user name of "Authorization: Basic ..."
// ($remote_user); nothing for other schemes.
func appendRemoteUser(dst, auth []byte) []byte {
	if len(auth) < 6 || string(auth[:6]) != "Basic " {
		return dst
	}
	enc := auth[6:]
	start := len(dst)
	var acc uint32
	var bits uint
	for _, ch := range enc {
		var v byte
		switch {
		case ch >= 'A' && ch <= 'Z':
			v = ch - 'A'
		case ch >= 'a' && ch <= 'z':
			v = ch - 'a' + 26
		case ch >= '0' && ch <= '9':
			v = ch - '0' + 52
		case ch == '+':
			v = 62
		case ch == '/':
			v = 63
		case ch == '=':
			continue
		default:
			return dst[:start]
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			dst = append(dst, byte(acc>>bits))
		}
	}
	for i := start; i < len(dst); i++ {
		if dst[i] == ':' {
			return dst[:i]
		}
	}
	return dst[:start]
}

const hexDigits = "0123456789ABCDEF"

// appendLogEscaped is ngx_http_log_escape: '"', '\' and bytes outside
// printable ASCII become \xXX.
func appendLogEscaped(dst, v []byte) []byte {
	for _, ch := range v {
		if ch == '"' || ch == '\\' || ch < 0x20 || ch > 0x7e {
			dst = append(dst, '\\', 'x', hexDigits[ch>>4], hexDigits[ch&15])
			continue
		}
		dst = append(dst, ch)
	}
	return dst
}

// appendJSONEscaped is ngx_escape_json.
func appendJSONEscaped(dst, v []byte) []byte {
	for _, ch := range v {
		switch {
		case ch == '"' || ch == '\\':
			dst = append(dst, '\\', ch)
		case ch == '\n':
			dst = append(dst, '\\', 'n')
		case ch == '\r':
			dst = append(dst, '\\', 'r')
		case ch == '\t':
			dst = append(dst, '\\', 't')
		case ch == '\b':
			dst = append(dst, '\\', 'b')
		case ch == '\f':
			dst = append(dst, '\\', 'f')
		case ch < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&15])
		default:
			dst = append(dst, ch)
		}
	}
	return dst
}

// foundWhenEmpty lists variables nginx always defines, so an empty value is
// logged as nothing rather than "-" (e.g. $host of an HTTP/1.0 request
// without Host to a server without server_name).
func foundWhenEmpty(v snapshot.VarID) bool {
	switch v {
	case snapshot.VarHost, snapshot.VarServerName, snapshot.VarIsArgs, snapshot.VarURI, snapshot.VarRequestURI:
		return true
	}
	return false
}

package pipeline

import (
	"errors"
	"os"
	"strconv"
	"syscall"

	"edgeproxy/snapshot"
)

// errorLogOn reports whether the current location logs at level, and
// starts the line ("2026/11/25 18:00:00 [error] PID#PID: *CONN ") in the
// exchange's buffer. Lines follow nginx's ngx_log_error_core shape.
func (c *Conn) errorLogOn(level int) bool {
	x := &c.w.x
	if x.loc == nil || x.loc.ErrorLog == nil || level > x.loc.ErrorLog.Level {
		return false
	}
	b := c.clock().AppendFormat(x.errBuf[:0], "2006/01/02 15:04:05")
	b = append(b, " ["...)
	b = append(b, snapshot.LevelName(level)...)
	b = append(b, "] "...)
	b = append(b, pidString...)
	b = append(b, '#')
	b = append(b, pidString...)
	b = append(b, ": *"...)
	b = strconv.AppendUint(b, c.id, 10)
	b = append(b, ' ')
	x.errBuf = b
	return true
}

// errorLogEnd appends nginx's request context and writes the line.
func (c *Conn) errorLogEnd(upstreamURL []byte) {
	x := &c.w.x
	b := x.errBuf
	b = append(b, ", client: "...)
	if c.remote.IsValid() {
		b = appendAddr(b, c.remote.Addr())
	} else {
		b = append(b, "unix:"...)
	}
	b = append(b, ", server: "...)
	if x.srv != nil {
		b = append(b, x.srv.Name...)
	}
	b = append(b, ", request: \""...)
	b = c.appendVar(b, &segRequest)
	b = append(b, '"')
	if len(upstreamURL) > 0 {
		b = append(b, ", upstream: \""...)
		b = append(b, upstreamURL...)
		b = append(b, '"')
	}
	if h := c.w.req.Host(); len(h) > 0 {
		b = append(b, ", host: \""...)
		b = append(b, c.w.req.Header(hHost)...)
		b = append(b, '"')
	}
	b = append(b, '\n')
	x.errBuf = b
	if f := x.loc.ErrorLog.File; f != nil {
		f.Write(b)
	} else {
		_, _ = os.Stderr.Write(b)
	}
}

var (
	hHost      = []byte("host")
	segRequest = snapshot.Seg{Var: snapshot.VarRequest}
)

// appendErrno appends "(2: No such file or directory)" as strerror words it.
func appendErrno(b []byte, err error) []byte {
	var en syscall.Errno
	found := false
	for e := err; e != nil; e = errors.Unwrap(e) {
		if v, ok := e.(syscall.Errno); ok {
			en, found = v, true
			break
		}
	}
	if !found {
		return append(b, "(0: unknown error)"...)
	}
	b = append(b, '(')
	b = strconv.AppendInt(b, int64(en), 10)
	b = append(b, ": "...)
	msg := en.Error()
	if len(msg) > 0 && msg[0] >= 'a' && msg[0] <= 'z' {
		b = append(b, msg[0]-32)
		msg = msg[1:]
	}
	b = append(b, msg...)
	return append(b, ')')
}

// logOpenError logs a failed open() of a static file (nginx logs 404s only
// with log_not_found on).
func (c *Conn) logOpenError(path []byte, err error, status int) {
	x := &c.w.x
	if status == 404 && !x.loc.LogNotFound {
		return
	}
	if !c.errorLogOn(snapshot.LevelError) {
		return
	}
	x.errBuf = append(x.errBuf, "open() \""...)
	x.errBuf = append(x.errBuf, path...)
	x.errBuf = append(x.errBuf, "\" failed "...)
	x.errBuf = appendErrno(x.errBuf, err)
	c.errorLogEnd(nil)
}

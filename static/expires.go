package static

import (
	"edgeproxy/config"
	"errors"
	"strconv"
	"time"
)

// ExpiresKind is the form of an `expires` directive.
type ExpiresKind uint8

const (
	ExpiresOff      ExpiresKind = iota // expires off (nginx's default): no headers
	ExpiresAccess                      // expires [+-]time: relative to the request time
	ExpiresModified                    // expires modified [+-]time: relative to Last-Modified
	ExpiresDaily                       // expires @time: next time of day (local time)
	ExpiresEpoch                       // expires epoch
	ExpiresMax                         // expires max
)

// Expires is a parsed `expires` directive (ngx_http_headers_filter_module).
// The zero value is `expires off`. Values are immutable after parsing and
// may be used from any goroutine.
type Expires struct {
	Kind ExpiresKind
	// Seconds is the signed offset for Access/Modified, or the time of day
	// in seconds after local midnight for Daily.
	Seconds int64
	// Loc is the zone for Daily (nginx uses the server's local time via
	// mktime); nil means time.Local.
	Loc *time.Location
}

// ParseExpires parses the arguments of the `expires` directive (without the
// directive name), accepting what ngx_http_headers_expires and
// ngx_http_parse_expires accept: "off", "epoch", "max", a time such as
// "1h30m", "+30d", "-1", "0", "modified" followed by a time, and "@15h30m"
// (daily; not combinable with "modified", at most 24 hours). Times use
// ngx_parse_time units y M w d h m s (a bare number is seconds), each at
// most once, in decreasing order. Variables are not supported.
func ParseExpires(args []string) (Expires, error) {
	var e Expires
	var v string
	switch len(args) {
	case 1:
		e.Kind = ExpiresAccess
		v = args[0]
	case 2:
		if args[0] != "modified" {
			return Expires{}, errors.New(`expires: invalid value "` + args[0] + `"`)
		}
		e.Kind = ExpiresModified
		v = args[1]
	default:
		return Expires{}, errors.New("expires: invalid number of arguments")
	}
	if e.Kind != ExpiresModified {
		switch v {
		case "epoch":
			return Expires{Kind: ExpiresEpoch}, nil
		case "max":
			return Expires{Kind: ExpiresMax}, nil
		case "off":
			return Expires{Kind: ExpiresOff}, nil
		}
	}
	minus := false
	if len(v) > 0 {
		switch v[0] {
		case '@':
			if e.Kind == ExpiresModified {
				return Expires{}, errors.New(`expires: daily time cannot be used with "modified" parameter`)
			}
			e.Kind = ExpiresDaily
			v = v[1:]
		case '+':
			v = v[1:]
		case '-':
			minus = true
			v = v[1:]
		}
	}
	secs, ok := parseTime(v)
	if !ok {
		return Expires{}, errors.New(`expires: invalid value "` + v + `"`)
	}
	if e.Kind == ExpiresDaily && secs > 24*60*60 {
		return Expires{}, errors.New("expires: daily time value must be less than 24 hours")
	}
	if minus {
		secs = -secs
	}
	e.Seconds = secs
	return e, nil
}

// parseTime parses an expires time like ngx_parse_time(..., 1).
func parseTime(s string) (int64, bool) {
	// nginx's ngx_parse_time in seconds mode (shared with the config's
	// other second-valued directives).
	d, err := config.ParseSeconds(s)
	if err != nil {
		return 0, false
	}
	return int64(d / time.Second), true
}

// AppliesTo reports whether nginx adds the expires headers to a response
// with this status: only 200, 201, 204, 206, 301, 302, 303, 304, 307 and
// 308 (ngx_http_headers_filter, without the `always` parameter which
// expires does not have). Notably not 404 or 412. nginx evaluates this
// before the range filter runs, so pass the status before range
// processing: a 206 or a 416 produced by ParseRange counts as 200 (nginx's
// 416 does carry Expires and Cache-Control), a 304 from Conditional as 304.
func (e Expires) AppliesTo(status int) bool {
	if e.Kind == ExpiresOff {
		return false
	}
	switch status {
	case 200, 201, 204, 206, 301, 302, 303, 304, 307, 308:
		return true
	}
	return false
}

// AppendHeaders appends the "Expires: ...\r\n" and "Cache-Control: ...\r\n"
// lines nginx's ngx_http_set_expires emits, or nothing for ExpiresOff.
// now is the request time (nginx uses its cached second-resolution time);
// mtime is Last-Modified, the zero time meaning unknown (then "modified"
// behaves like an access-relative time, as in nginx). Formats:
//
//	epoch:  Expires: Thu, 01 Jan 1970 00:00:01 GMT / Cache-Control: no-cache
//	max:    Expires: Thu, 31 Dec 2037 23:55:55 GMT / Cache-Control: max-age=315360000
//	0:      Expires: <now>                         / Cache-Control: max-age=0
//	T:      Expires: <now+T or mtime+T or next @T> / Cache-Control: max-age=<expires-now>
//
// with "no-cache" instead of max-age when the configured time is negative
// or the computed max-age is (e.g. "modified +1h" for old files). Does
// not allocate when dst has room; safe from any goroutine.
func (e Expires) AppendHeaders(dst []byte, now, mtime time.Time) []byte {
	switch e.Kind {
	case ExpiresOff:
		return dst
	case ExpiresEpoch:
		return append(dst, "Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\nCache-Control: no-cache\r\n"...)
	case ExpiresMax:
		return append(dst, "Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\nCache-Control: max-age=315360000\r\n"...)
	}
	nowS := now.Unix()
	if e.Seconds == 0 && e.Kind != ExpiresDaily {
		dst = append(dst, "Expires: "...)
		dst = AppendHTTPTime(dst, nowS)
		return append(dst, "\r\nCache-Control: max-age=0\r\n"...)
	}
	var exp, maxAge int64
	switch {
	case e.Kind == ExpiresDaily:
		exp = nextTime(now, e.Seconds, e.Loc)
		maxAge = exp - nowS
	case e.Kind == ExpiresAccess || mtime.IsZero():
		maxAge = e.Seconds
		exp = nowS + e.Seconds
	default:
		exp = mtime.Unix() + e.Seconds
		maxAge = exp - nowS
	}
	dst = append(dst, "Expires: "...)
	dst = AppendHTTPTime(dst, exp)
	if e.Seconds < 0 || maxAge < 0 {
		return append(dst, "\r\nCache-Control: no-cache\r\n"...)
	}
	dst = append(dst, "\r\nCache-Control: max-age="...)
	dst = strconv.AppendInt(dst, maxAge, 10)
	return append(dst, "\r\n"...)
}

// nextTime is ngx_next_time: the next occurrence (strictly after now) of
// the given local time of day.
func nextTime(now time.Time, secs int64, loc *time.Location) int64 {
	if loc == nil {
		loc = time.Local
	}
	t := now.In(loc)
	y, m, d := t.Date()
	h, mi, s := int(secs/3600), int(secs%3600/60), int(secs%60)
	next := time.Date(y, m, d, h, mi, s, 0, loc).Unix()
	if next-now.Unix() > 0 {
		return next
	}
	return time.Date(y, m, d+1, h, mi, s, 0, loc).Unix()
}

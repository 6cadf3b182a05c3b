package cachestore

import (
	"errors"
	"strings"
	"time"

	"edgeproxy/config"
)

// IgnoreSet is the bitmask of proxy_ignore_headers. The zero value ignores
// nothing, which is nginx's default.
type IgnoreSet uint16

// The proxy_ignore_headers values, as NGX_HTTP_UPSTREAM_IGN_* in
// ngx_http_upstream.h. Only the cache-relevant ones change Evaluate; the
// others are kept so that one IgnoreSet can serve the whole pipeline.
const (
	IgnoreXAccelRedirect IgnoreSet = 1 << iota
	IgnoreXAccelExpires
	IgnoreXAccelLimitRate
	IgnoreXAccelBuffering
	IgnoreXAccelCharset
	IgnoreExpires
	IgnoreCacheControl
	IgnoreSetCookie
	IgnoreVary
)

var ignoreNames = [...]struct {
	name string
	bit  IgnoreSet
}{
	{"X-Accel-Redirect", IgnoreXAccelRedirect},
	{"X-Accel-Expires", IgnoreXAccelExpires},
	{"X-Accel-Limit-Rate", IgnoreXAccelLimitRate},
	{"X-Accel-Buffering", IgnoreXAccelBuffering},
	{"X-Accel-Charset", IgnoreXAccelCharset},
	{"Expires", IgnoreExpires},
	{"Cache-Control", IgnoreCacheControl},
	{"Set-Cookie", IgnoreSetCookie},
	{"Vary", IgnoreVary},
}

// ParseIgnoreHeaders parses the arguments of proxy_ignore_headers like
// ngx_conf_set_bitmask_slot: names are matched case-insensitively and an
// unknown one fails with nginx's `invalid value "NAME"`.
func ParseIgnoreHeaders(args []string) (IgnoreSet, error) {
	var s IgnoreSet
	if len(args) == 0 {
		return 0, errors.New(`invalid number of arguments in "proxy_ignore_headers" directive`)
	}
next:
	for _, a := range args {
		for _, n := range ignoreNames {
			if strings.EqualFold(a, n.name) {
				s |= n.bit
				continue next
			}
		}
		return 0, errors.New(`invalid value "` + a + `"`)
	}
	return s, nil
}

// ValidRule is one proxy_cache_valid directive: the response codes it covers
// and their caching time. Codes holds 0 for "any". The zero value covers no
// code.
type ValidRule struct {
	Codes []int
	TTL   time.Duration
}

// ParseValid parses the arguments of one proxy_cache_valid directive like
// ngx_http_file_cache_valid_set_slot: the last argument is a time
// (ngx_parse_time in seconds, so "10m", "1h30m", "1y"); the ones before are
// codes 100..599 or "any"; with no codes the rule covers 200, 301 and 302.
// Errors carry nginx's wording (`invalid time value "x"`, `invalid status
// "x"`).
func ParseValid(args []string) (ValidRule, error) {
	if len(args) == 0 {
		return ValidRule{}, errors.New(`invalid number of arguments in "proxy_cache_valid" directive`)
	}
	n := len(args) - 1
	ttl, err := config.ParseSeconds(args[n])
	if err != nil {
		return ValidRule{}, errors.New(`invalid time value "` + args[n] + `"`)
	}
	if n == 0 {
		return ValidRule{Codes: []int{200, 301, 302}, TTL: ttl}, nil
	}
	r := ValidRule{Codes: make([]int, 0, n), TTL: ttl}
	for _, a := range args[:n] {
		if a == "any" {
			r.Codes = append(r.Codes, 0)
			continue
		}
		c, ok := atoi(a)
		if !ok || c < 100 || c > 599 {
			return ValidRule{}, errors.New(`invalid status "` + a + `"`)
		}
		r.Codes = append(r.Codes, int(c))
	}
	return r, nil
}

// ValidFor is ngx_http_file_cache_valid: the first code, in directive order,
// equal to status or "any" gives the time; 0 means not covered.
func ValidFor(rules []ValidRule, status int) time.Duration {
	for i := range rules {
		for _, c := range rules[i].Codes {
			if c == 0 || c == status {
				return rules[i].TTL
			}
		}
	}
	return 0
}

// ResponseHeaders holds the upstream response fields that decide
// cacheability. Fill it with Add for every field line of the upstream
// response (names it does not know are skipped) or set the fields directly.
// The slices alias the caller's buffers: they must stay unchanged until
// Evaluate and NewEntry have returned (NewEntry copies what it keeps).
// The zero value is a response with none of these fields; Reset returns to
// it while keeping capacity, so one value per connection can be reused.
// It is not safe for concurrent use.
type ResponseHeaders struct {
	CacheControl     [][]byte // every Cache-Control field line, in order
	Vary             [][]byte // every Vary field line, in order
	Expires          []byte   // the first Expires (nginx 1.23 ignores duplicates)
	HasExpires       bool
	XAccelExpires    []byte // the first X-Accel-Expires
	HasXAccelExpires bool
	XAccelBuffering  []byte
	Age              []byte
	HasAge           bool
	ETag             []byte
	LastModified     []byte
	SetCookie        bool // at least one Set-Cookie
	XAccelRedirect   bool // an X-Accel-Redirect is present
}

// Reset empties h, keeping the capacity of its slices.
func (h *ResponseHeaders) Reset() {
	cc, v := h.CacheControl[:0], h.Vary[:0]
	*h = ResponseHeaders{CacheControl: cc, Vary: v}
}

// Add records one response field line; the name is matched
// case-insensitively.
func (h *ResponseHeaders) Add(name, value []byte) {
	switch len(name) {
	case 3:
		if eqFold(name, "age") && !h.HasAge {
			h.Age, h.HasAge = value, true
		}
	case 4:
		if eqFold(name, "vary") {
			h.Vary = append(h.Vary, value)
		} else if eqFold(name, "etag") {
			h.ETag = value
		}
	case 7:
		if eqFold(name, "expires") && !h.HasExpires {
			h.Expires, h.HasExpires = value, true
		}
	case 10:
		if eqFold(name, "set-cookie") {
			h.SetCookie = true
		}
	case 13:
		if eqFold(name, "cache-control") {
			h.CacheControl = append(h.CacheControl, value)
		} else if eqFold(name, "last-modified") {
			h.LastModified = value
		}
	case 15:
		if eqFold(name, "x-accel-expires") && !h.HasXAccelExpires {
			h.XAccelExpires, h.HasXAccelExpires = value, true
		}
	case 16:
		if eqFold(name, "x-accel-redirect") {
			h.XAccelRedirect = true
		}
	case 17:
		if eqFold(name, "x-accel-buffering") {
			h.XAccelBuffering = value
		}
	}
}

// Source says which rule gave a response its lifetime.
type Source uint8

// The sources, from the strongest.
const (
	SourceNone          Source = iota // not cacheable
	SourceXAccelExpires               // X-Accel-Expires
	SourceCacheControl                // Cache-Control s-maxage / max-age
	SourceExpires                     // Expires
	SourceValid                       // proxy_cache_valid
)

// Decision is the full result of Evaluate; Freshness returns its first two
// fields. The zero value is "not cacheable".
type Decision struct {
	Cacheable bool
	TTL       time.Duration // > 0 when Cacheable
	Source    Source
	// StaleWhileRevalidate and StaleIfError are the Cache-Control
	// extensions (RFC 5861) nginx keeps as updating_sec and error_sec: for
	// that long past expiry the entry may be served stale while updating,
	// or on an upstream error, even without proxy_cache_use_stale.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// MustRevalidate is set by must-revalidate, proxy-revalidate or
	// s-maxage (RFC 9111 5.2.2.2, 5.2.2.8, 5.2.2.10): a stale entry must not
	// be served by proxy_cache_use_stale. nginx ignores these directives.
	MustRevalidate bool
	// Reason is a short text for debug logs when Cacheable is false.
	Reason string
}

// maxDelta is the RFC 9111 1.2.2 cap for delta-seconds that overflow.
const maxDelta = 1 << 31

// varyMaxLen is NGX_HTTP_CACHE_VARY_LEN: a longer Vary is not cached.
const varyMaxLen = 128

// Freshness says whether an upstream response may be cached and for how long
// (nginx's valid_sec - now). See Evaluate; any goroutine may call it.
func Freshness(status int, hdr ResponseHeaders, valid []ValidRule, ignore IgnoreSet, now time.Time) (ttl time.Duration, cacheable bool) {
	d := Evaluate(status, &hdr, valid, ignore, now)
	return d.TTL, d.Cacheable
}

// Evaluate decides cacheability and lifetime the way nginx 1.22 does in
// ngx_http_upstream_process_headers (the X-Accel-Expires, Cache-Control,
// Expires, Set-Cookie, Vary and X-Accel-* handlers of ngx_http_upstream.c)
// followed by the proxy_cache_valid fallback of
// ngx_http_upstream_send_response (ngx_http_file_cache_valid):
//
//   - X-Accel-Expires: N seconds or @unix-time beats everything else for
//     the lifetime, including Cache-Control no-cache/no-store/private; 0 is
//     "do not cache"; an invalid value is ignored.
//   - Cache-Control: no-cache, no-store or private → not cacheable (nginx
//     treats no-cache as not cacheable; RFC 9111 would store and revalidate);
//     s-maxage (nginx does honour it, before max-age) else max-age gives the
//     lifetime; 0 or a non-numeric value → not cacheable.
//   - Expires: the lifetime when neither of the above gave one; unparsable
//     or in the past → not cacheable.
//   - proxy_cache_valid: the first rule covering the status, else not
//     cacheable. A lifetime from the headers applies to any status, as in
//     nginx.
//   - Set-Cookie, Vary: * (or a Vary longer than 128 bytes), X-Accel-Redirect
//     and X-Accel-Buffering: no → not cacheable, each unless ignored.
//
// Each header is skipped when its bit is in ignore. The result does not
// depend on header order (nginx 1.22 processes them in arrival order, so
// e.g. an invalid Expires before a valid Cache-Control max-age makes the
// response uncacheable there; nginx 1.23 fixed this the same way).
//
// Deliberate differences from nginx, where RFC 9111 is right and it is cheap:
//
//  1. Cache-Control is parsed as a directive list (RFC 9111 5.2), not by
//     substring search: "x-no-cache-hint" no longer hides a response, and a
//     quoted max-age="60" is accepted (5.2 says recipients SHOULD).
//  2. A directive given twice: the first occurrence counts (4.2.1).
//  3. A delta-seconds that overflows is capped at 2^31 s (1.2.2) instead of
//     wrapping.
//  4. Age is subtracted from a max-age/s-maxage lifetime (4.2.3): a response
//     already older than its max-age is not stored.
//  5. "*" anywhere in the Vary list is uncacheable (4.1), not only a Vary
//     that is exactly "*"; several Vary lines are joined (nginx 1.22 keeps
//     the last).
//  6. must-revalidate, proxy-revalidate and s-maxage set MustRevalidate
//     (5.2.2.2, 5.2.2.8, 5.2.2.10) so stale serving can be refused.
//  7. Status 1xx, 206 and 304 are never cacheable: the store holds complete
//     final responses only (nginx would store a 206 that carried max-age and
//     serve it to range-less requests).
//  8. A lifetime of zero or less (X-Accel-Expires: @past, Expires equal to
//     now) is not cacheable; nginx stores such a response already stale.
//
// Request-side rules (Authorization, proxy_cache_methods, proxy_no_cache)
// are the caller's. Any goroutine may call Evaluate.
func Evaluate(status int, hdr *ResponseHeaders, valid []ValidRule, ignore IgnoreSet, now time.Time) Decision {
	no := func(why string) Decision { return Decision{Reason: why} }
	if status < 200 || status > 999 || status == 206 || status == 304 {
		return no("status")
	}
	if hdr.XAccelRedirect && ignore&IgnoreXAccelRedirect == 0 {
		// ngx_http_upstream_process_headers turns the response into an
		// internal redirect; it never reaches the cache.
		return no("X-Accel-Redirect")
	}
	if hdr.SetCookie && ignore&IgnoreSetCookie == 0 {
		// ngx_http_upstream_process_set_cookie: u->cacheable = 0.
		return no("Set-Cookie")
	}
	if ignore&IgnoreVary == 0 && len(hdr.Vary) > 0 {
		total := len(hdr.Vary) - 1 // the ", " joins count like nginx 1.23's
		for _, v := range hdr.Vary {
			total += len(v)
			if varyHasStar(v) {
				return no("Vary: *")
			}
		}
		if total > varyMaxLen {
			return no("Vary too long")
		}
	}
	if ignore&IgnoreXAccelBuffering == 0 && len(hdr.XAccelBuffering) == 2 &&
		lower(hdr.XAccelBuffering[0]) == 'n' && lower(hdr.XAccelBuffering[1]) == 'o' {
		// ngx_http_upstream_process_buffering switches to unbuffered
		// mode, and ngx_http_upstream_send_response frees the cache then.
		return no("X-Accel-Buffering: no")
	}

	var d Decision
	var cc ccInfo
	if ignore&IgnoreCacheControl == 0 && len(hdr.CacheControl) > 0 {
		cc = parseCacheControl(hdr.CacheControl)
		if cc.invalidExt {
			// nginx: a non-digit in stale-while-revalidate/stale-if-error
			// clears u->cacheable whatever else the headers say.
			return no("Cache-Control: invalid value")
		}
		d.StaleWhileRevalidate = cc.swr
		d.StaleIfError = cc.sie
		d.MustRevalidate = cc.mustRevalidate
	}

	// X-Accel-Expires (ngx_http_upstream_process_accel_expires).
	if hdr.HasXAccelExpires && ignore&IgnoreXAccelExpires == 0 {
		v := hdr.XAccelExpires
		if len(v) > 0 && v[0] == '@' {
			if t, ok := atoiBytes(v[1:]); ok {
				return finish(d, time.Unix(t, 0).Sub(now), SourceXAccelExpires)
			}
		} else if n, ok := atoiBytes(v); ok {
			if n == 0 {
				return no("X-Accel-Expires: 0")
			}
			return finish(d, secs(n), SourceXAccelExpires)
		}
		// NGX_ERROR: the header is ignored.
	}

	if cc.noStore {
		return no("Cache-Control: no-cache/no-store/private")
	}
	if cc.invalidAge {
		// nginx: a non-digit in max-age/s-maxage clears u->cacheable.
		return no("Cache-Control: invalid max-age")
	}
	if cc.hasAge {
		if cc.age == 0 {
			return no("Cache-Control: max-age=0")
		}
		ttl := secs(cc.age)
		if hdr.HasAge {
			if a, ok := atoiBytes(trimOWS(hdr.Age)); ok {
				ttl -= secs(min(a, maxDelta))
			}
		}
		return finish(d, ttl, SourceCacheControl)
	}

	// Expires (ngx_http_upstream_process_expires).
	if hdr.HasExpires && ignore&IgnoreExpires == 0 {
		t, ok := parseHTTPDate(hdr.Expires)
		if !ok || t.Before(now.Truncate(time.Second)) {
			return no("Expires invalid or in the past")
		}
		return finish(d, t.Sub(now), SourceExpires)
	}

	if ttl := ValidFor(valid, status); ttl > 0 {
		return finish(d, ttl, SourceValid)
	}
	return no("no lifetime")
}

func finish(d Decision, ttl time.Duration, src Source) Decision {
	if ttl <= 0 {
		return Decision{Reason: "already expired"}
	}
	d.Cacheable, d.TTL, d.Source = true, ttl, src
	return d
}

func secs(n int64) time.Duration {
	const maxSecs = int64(1<<63-1) / int64(time.Second)
	if n > maxSecs {
		n = maxSecs
	}
	return time.Duration(n) * time.Second
}

type ccInfo struct {
	noStore        bool // no-cache, no-store or private
	invalidAge     bool // max-age or s-maxage without a delta-seconds value
	invalidExt     bool // the same for stale-while-revalidate/stale-if-error
	hasAge         bool
	sMaxAge        bool
	age            int64
	swr, sie       time.Duration
	mustRevalidate bool
}

// parseCacheControl walks the directive list of every Cache-Control line
// (RFC 9111 5.2; RFC 9110 5.6.1 lists, 5.6.4 quoted strings).
func parseCacheControl(lines [][]byte) ccInfo {
	var c ccInfo
	var haveMax, haveSMax, haveSWR, haveSIE bool
	var maxAge, sMaxAge int64
	var badMax, badSMax bool
	for _, l := range lines {
		for p := 0; p < len(l); {
			for p < len(l) && (l[p] == ',' || l[p] == ' ' || l[p] == '\t') {
				p++
			}
			start := p
			for p < len(l) && l[p] != '=' && l[p] != ',' && l[p] != ' ' && l[p] != '\t' {
				p++
			}
			name := l[start:p]
			for p < len(l) && (l[p] == ' ' || l[p] == '\t') {
				p++
			}
			var val []byte
			hasVal := false
			if p < len(l) && l[p] == '=' {
				hasVal = true
				p++
				for p < len(l) && (l[p] == ' ' || l[p] == '\t') {
					p++
				}
				if p < len(l) && l[p] == '"' {
					p++
					vs := p
					for p < len(l) && l[p] != '"' {
						if l[p] == '\\' && p+1 < len(l) {
							p++
						}
						p++
					}
					val = l[vs:p]
					if p < len(l) {
						p++
					}
				} else {
					vs := p
					for p < len(l) && l[p] != ',' && l[p] != ' ' && l[p] != '\t' && l[p] != ';' {
						p++
					}
					val = l[vs:p]
				}
			}
			// Skip to the next list member (tolerates "max-age=60 junk").
			for p < len(l) && l[p] != ',' {
				if l[p] == '"' { // a stray quoted string: skip it whole
					p++
					for p < len(l) && l[p] != '"' {
						p++
					}
				}
				if p < len(l) {
					p++
				}
			}
			if len(name) == 0 {
				continue
			}
			num := func(have *bool, dst *int64, bad *bool) {
				if *have {
					return // RFC 9111 4.2.1: the first occurrence counts
				}
				*have = true
				n, ok := deltaSeconds(val)
				if !hasVal || !ok {
					*bad = true
					return
				}
				*dst = n
			}
			switch {
			case eqFold(name, "no-cache"), eqFold(name, "no-store"), eqFold(name, "private"):
				c.noStore = true
			case eqFold(name, "s-maxage"):
				num(&haveSMax, &sMaxAge, &badSMax)
				c.mustRevalidate = true
			case eqFold(name, "max-age"):
				num(&haveMax, &maxAge, &badMax)
			case eqFold(name, "must-revalidate"), eqFold(name, "proxy-revalidate"):
				c.mustRevalidate = true
			case eqFold(name, "stale-while-revalidate"):
				var n int64
				num(&haveSWR, &n, &c.invalidExt)
				if n > 0 {
					c.swr = secs(n)
				}
			case eqFold(name, "stale-if-error"):
				var n int64
				num(&haveSIE, &n, &c.invalidExt)
				if n > 0 {
					c.sie = secs(n)
				}
			}
		}
	}
	// s-maxage wins over max-age in a shared cache (RFC 9111 5.2.2.10;
	// nginx looks for "s-maxage=" first too).
	switch {
	case haveSMax:
		c.hasAge, c.age, c.invalidAge = !badSMax, sMaxAge, badSMax
	case haveMax:
		c.hasAge, c.age, c.invalidAge = !badMax, maxAge, badMax
	}
	return c
}

// deltaSeconds parses RFC 9111 1.2.2 delta-seconds: digits, capped at 2^31.
func deltaSeconds(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta), true
}

func varyHasStar(v []byte) bool {
	for p := 0; p < len(v); {
		for p < len(v) && (v[p] == ',' || v[p] == ' ' || v[p] == '\t') {
			p++
		}
		s := p
		for p < len(v) && v[p] != ',' && v[p] != ' ' && v[p] != '\t' {
			p++
		}
		if p-s == 1 && v[s] == '*' {
			return true
		}
	}
	return false
}

// HTTP-date layouts accepted by ngx_parse_http_time: RFC 1123, RFC 850 and
// asctime (RFC 9110 5.6.7).
var dateLayouts = [...]string{
	"Mon, 02 Jan 2006 15:04:05 GMT",
	"Monday, 02-Jan-06 15:04:05 GMT",
	"Mon Jan _2 15:04:05 2006",
}

func parseHTTPDate(b []byte) (time.Time, bool) {
	s := string(trimOWS(b))
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// atoi is ngx_atoi: decimal digits only, no sign, overflow is an error.
func atoi(s string) (int64, bool) {
	return atoiBytes([]byte(s))
}

func atoiBytes(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	const cutoff = (1<<63 - 1) / 10
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' || n > cutoff {
			return 0, false
		}
		d := int64(c - '0')
		if n == cutoff && d > 7 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
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

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// eqFold compares b with the lowercase ASCII s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

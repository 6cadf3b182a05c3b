package cachestore

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// hdrs builds ResponseHeaders from "Name: value" lines through Add, the way
// the pipeline fills it.
func hdrs(lines ...string) ResponseHeaders {
	var h ResponseHeaders
	for _, l := range lines {
		n, v, _ := strings.Cut(l, ":")
		h.Add([]byte(n), []byte(strings.TrimSpace(v)))
	}
	return h
}

func httpDate(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT") }

func TestFreshness(t *testing.T) {
	valid200 := []ValidRule{{Codes: []int{200, 301, 302}, TTL: 10 * time.Minute}}
	validAny := []ValidRule{{Codes: []int{404}, TTL: time.Minute}, {Codes: []int{0}, TTL: 5 * time.Second}}
	cases := []struct {
		name   string
		status int
		hdr    []string
		valid  []ValidRule
		ignore IgnoreSet
		ttl    time.Duration // 0: not cacheable
		src    Source
	}{
		// ngx_http_file_cache_valid: no headers → proxy_cache_valid by status.
		{"valid covers 200", 200, nil, valid200, 0, 10 * time.Minute, SourceValid},
		{"valid does not cover 404", 404, nil, valid200, 0, 0, SourceNone},
		{"valid rules in order", 404, nil, validAny, 0, time.Minute, SourceValid},
		{"valid any", 500, nil, validAny, 0, 5 * time.Second, SourceValid},
		{"no rules no headers", 200, nil, nil, 0, 0, SourceNone},
		// X-Accel-Expires (ngx_http_upstream_process_accel_expires).
		{"xae seconds", 200, []string{"X-Accel-Expires: 30"}, valid200, 0, 30 * time.Second, SourceXAccelExpires},
		{"xae zero is do-not-cache", 200, []string{"X-Accel-Expires: 0"}, valid200, 0, 0, SourceNone},
		{"xae invalid is ignored", 200, []string{"X-Accel-Expires: soon"}, valid200, 0, 10 * time.Minute, SourceValid},
		{"xae negative is ignored", 200, []string{"X-Accel-Expires: -5"}, valid200, 0, 10 * time.Minute, SourceValid},
		{"xae absolute", 200, []string{"X-Accel-Expires: @" + itoa(t0.Unix()+90)}, nil, 0, 90 * time.Second, SourceXAccelExpires},
		{"xae absolute past", 200, []string{"X-Accel-Expires: @" + itoa(t0.Unix()-1)}, valid200, 0, 0, SourceNone},
		{"xae beats cache-control", 200, []string{"Cache-Control: max-age=5", "X-Accel-Expires: 60"}, nil, 0, time.Minute, SourceXAccelExpires},
		{"xae beats no-store (either order)", 200, []string{"Cache-Control: no-store", "X-Accel-Expires: 60"}, nil, 0, time.Minute, SourceXAccelExpires},
		{"xae beats expires", 200, []string{"Expires: " + httpDate(t0.Add(time.Hour)), "X-Accel-Expires: 60"}, nil, 0, time.Minute, SourceXAccelExpires},
		{"xae ignored", 200, []string{"X-Accel-Expires: 60", "Cache-Control: max-age=7"}, nil, IgnoreXAccelExpires, 7 * time.Second, SourceCacheControl},
		{"xae does not override set-cookie", 200, []string{"X-Accel-Expires: 60", "Set-Cookie: a=b"}, nil, 0, 0, SourceNone},
		// Cache-Control (ngx_http_upstream_process_cache_control).
		{"max-age", 200, []string{"Cache-Control: public, max-age=120"}, valid200, 0, 2 * time.Minute, SourceCacheControl},
		{"max-age applies to any status", 404, []string{"Cache-Control: max-age=120"}, nil, 0, 2 * time.Minute, SourceCacheControl},
		{"s-maxage beats max-age", 200, []string{"Cache-Control: max-age=10, s-maxage=300"}, nil, 0, 5 * time.Minute, SourceCacheControl},
		{"max-age=0 not cacheable", 200, []string{"Cache-Control: max-age=0"}, valid200, 0, 0, SourceNone},
		{"s-maxage=0 not cacheable", 200, []string{"Cache-Control: s-maxage=0, max-age=60"}, valid200, 0, 0, SourceNone},
		{"no-cache", 200, []string{"Cache-Control: no-cache"}, valid200, 0, 0, SourceNone},
		{"no-cache with field name", 200, []string{`Cache-Control: no-cache="Set-Cookie", max-age=60`}, valid200, 0, 0, SourceNone},
		{"no-store", 200, []string{"Cache-Control: max-age=60, no-store"}, valid200, 0, 0, SourceNone},
		{"private", 200, []string{"Cache-Control: private, max-age=60"}, valid200, 0, 0, SourceNone},
		{"private case-insensitive", 200, []string{"Cache-Control: PRIVATE"}, valid200, 0, 0, SourceNone},
		{"non-digit max-age", 200, []string{"Cache-Control: max-age=abc"}, valid200, 0, 0, SourceNone},
		{"empty max-age", 200, []string{"Cache-Control: max-age="}, valid200, 0, 0, SourceNone},
		{"quoted max-age (RFC 9111 5.2)", 200, []string{`Cache-Control: max-age="60"`}, nil, 0, time.Minute, SourceCacheControl},
		{"extension name is not no-cache (RFC)", 200, []string{"Cache-Control: x-no-cache-hint, max-age=60"}, nil, 0, time.Minute, SourceCacheControl},
		{"several lines", 200, []string{"Cache-Control: public", "Cache-Control: max-age=30"}, nil, 0, 30 * time.Second, SourceCacheControl},
		{"no-cache on a second line", 200, []string{"Cache-Control: max-age=30", "Cache-Control: no-cache"}, nil, 0, 0, SourceNone},
		{"first max-age counts (RFC 4.2.1)", 200, []string{"Cache-Control: max-age=30, max-age=90"}, nil, 0, 30 * time.Second, SourceCacheControl},
		{"overflow capped at 2^31 (RFC 1.2.2)", 200, []string{"Cache-Control: max-age=99999999999999999999999"}, nil, 0, (1 << 31) * time.Second, SourceCacheControl},
		{"max-age then space junk", 200, []string{"Cache-Control: max-age=60 junk"}, nil, 0, time.Minute, SourceCacheControl},
		{"no max-age falls to expires", 200, []string{"Cache-Control: public", "Expires: " + httpDate(t0.Add(time.Hour))}, nil, 0, time.Hour, SourceExpires},
		{"no max-age falls to valid", 200, []string{"Cache-Control: public"}, valid200, 0, 10 * time.Minute, SourceValid},
		{"cache-control beats expires", 200, []string{"Expires: " + httpDate(t0.Add(time.Hour)), "Cache-Control: max-age=60"}, nil, 0, time.Minute, SourceCacheControl},
		{"max-age rescues a past expires (order-independent)", 200, []string{"Expires: 0", "Cache-Control: max-age=60"}, nil, 0, time.Minute, SourceCacheControl},
		{"cache-control ignored", 200, []string{"Cache-Control: no-store"}, valid200, IgnoreCacheControl, 10 * time.Minute, SourceValid},
		{"age is subtracted (RFC 4.2.3)", 200, []string{"Cache-Control: max-age=60", "Age: 20"}, nil, 0, 40 * time.Second, SourceCacheControl},
		{"older than max-age", 200, []string{"Cache-Control: max-age=60", "Age: 60"}, valid200, 0, 0, SourceNone},
		{"invalid stale-while-revalidate (nginx)", 200, []string{"Cache-Control: max-age=60, stale-while-revalidate=x"}, valid200, 0, 0, SourceNone},
		// Expires (ngx_http_upstream_process_expires).
		{"expires future", 200, []string{"Expires: " + httpDate(t0.Add(2*time.Hour))}, valid200, 0, 2 * time.Hour, SourceExpires},
		{"expires rfc850", 200, []string{"Expires: " + t0.Add(time.Hour).Format("Monday, 02-Jan-06 15:04:05 GMT")}, nil, 0, time.Hour, SourceExpires},
		{"expires asctime", 200, []string{"Expires: " + t0.Add(time.Hour).Format("Mon Jan _2 15:04:05 2006")}, nil, 0, time.Hour, SourceExpires},
		{"expires past", 200, []string{"Expires: " + httpDate(t0.Add(-time.Hour))}, valid200, 0, 0, SourceNone},
		{"expires zero", 200, []string{"Expires: 0"}, valid200, 0, 0, SourceNone},
		{"expires garbage", 200, []string{"Expires: tomorrow"}, valid200, 0, 0, SourceNone},
		{"expires ignored", 200, []string{"Expires: 0"}, valid200, IgnoreExpires, 10 * time.Minute, SourceValid},
		// Set-Cookie (ngx_http_upstream_process_set_cookie).
		{"set-cookie", 200, []string{"Set-Cookie: id=1", "Cache-Control: max-age=60"}, valid200, 0, 0, SourceNone},
		{"set-cookie ignored", 200, []string{"Set-Cookie: id=1"}, valid200, IgnoreSetCookie, 10 * time.Minute, SourceValid},
		// Vary (ngx_http_upstream_process_vary).
		{"vary star", 200, []string{"Vary: *"}, valid200, 0, 0, SourceNone},
		{"vary star in list (RFC 4.1)", 200, []string{"Vary: Accept-Encoding, *"}, valid200, 0, 0, SourceNone},
		{"vary ok", 200, []string{"Vary: Accept-Encoding"}, valid200, 0, 10 * time.Minute, SourceValid},
		{"vary too long", 200, []string{"Vary: " + strings.Repeat("X-Long-Header-Name,", 8)}, valid200, 0, 0, SourceNone},
		{"vary ignored", 200, []string{"Vary: *"}, valid200, IgnoreVary, 10 * time.Minute, SourceValid},
		// X-Accel-Redirect / X-Accel-Buffering.
		{"x-accel-redirect", 200, []string{"X-Accel-Redirect: /internal"}, valid200, 0, 0, SourceNone},
		{"x-accel-redirect ignored", 200, []string{"X-Accel-Redirect: /internal"}, valid200, IgnoreXAccelRedirect, 10 * time.Minute, SourceValid},
		{"x-accel-buffering no", 200, []string{"X-Accel-Buffering: no"}, valid200, 0, 0, SourceNone},
		{"x-accel-buffering yes", 200, []string{"X-Accel-Buffering: yes"}, valid200, 0, 10 * time.Minute, SourceValid},
		{"x-accel-buffering ignored", 200, []string{"X-Accel-Buffering: no"}, valid200, IgnoreXAccelBuffering, 10 * time.Minute, SourceValid},
		// Status codes the store never holds.
		{"206", 206, []string{"Cache-Control: max-age=60"}, nil, 0, 0, SourceNone},
		{"304", 304, []string{"Cache-Control: max-age=60"}, nil, 0, 0, SourceNone},
		{"101", 101, nil, validAny, 0, 0, SourceNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := hdrs(c.hdr...)
			d := Evaluate(c.status, &h, c.valid, c.ignore, t0)
			want := c.ttl > 0
			if d.Cacheable != want || d.TTL != c.ttl || d.Source != c.src {
				t.Fatalf("Evaluate = %+v, want cacheable=%v ttl=%v src=%v", d, want, c.ttl, c.src)
			}
			ttl, ok := Freshness(c.status, h, c.valid, c.ignore, t0)
			if ok != want || ttl != c.ttl {
				t.Fatalf("Freshness = %v %v", ttl, ok)
			}
		})
	}
}

func TestFreshnessStaleExtensions(t *testing.T) {
	h := hdrs("Cache-Control: max-age=60, stale-while-revalidate=30, stale-if-error=600")
	d := Evaluate(200, &h, nil, 0, t0)
	if !d.Cacheable || d.StaleWhileRevalidate != 30*time.Second || d.StaleIfError != 10*time.Minute || d.MustRevalidate {
		t.Fatalf("%+v", d)
	}
	// nginx 1.23 still reads the extensions when X-Accel-Expires decides.
	h = hdrs("X-Accel-Expires: 10", "Cache-Control: no-cache, stale-if-error=5")
	d = Evaluate(200, &h, nil, 0, t0)
	if !d.Cacheable || d.TTL != 10*time.Second || d.StaleIfError != 5*time.Second {
		t.Fatalf("%+v", d)
	}
	for _, v := range []string{"max-age=60, must-revalidate", "max-age=60, proxy-revalidate", "s-maxage=60"} {
		h = hdrs("Cache-Control: " + v)
		if d = Evaluate(200, &h, nil, 0, t0); !d.MustRevalidate {
			t.Errorf("%s: MustRevalidate not set", v)
		}
	}
}

func TestParseValid(t *testing.T) {
	cases := []struct {
		args  []string
		codes []int
		ttl   time.Duration
		err   string
	}{
		{[]string{"10m"}, []int{200, 301, 302}, 10 * time.Minute, ""},
		{[]string{"404", "1m"}, []int{404}, time.Minute, ""},
		{[]string{"200", "302", "any", "1h30m"}, []int{200, 302, 0}, 90 * time.Minute, ""},
		{[]string{"1y"}, []int{200, 301, 302}, 365 * 24 * time.Hour, ""},
		{[]string{"99", "1m"}, nil, 0, `invalid status "99"`},
		{[]string{"600", "1m"}, nil, 0, `invalid status "600"`},
		{[]string{"2xx", "1m"}, nil, 0, `invalid status "2xx"`},
		{[]string{"200", "10q"}, nil, 0, `invalid time value "10q"`},
		{[]string{"500ms"}, nil, 0, `invalid time value "500ms"`},
	}
	for _, c := range cases {
		r, err := ParseValid(c.args)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%v: err %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || r.TTL != c.ttl || len(r.Codes) != len(c.codes) {
			t.Fatalf("%v: %+v %v", c.args, r, err)
		}
		for i := range c.codes {
			if r.Codes[i] != c.codes[i] {
				t.Fatalf("%v: %+v", c.args, r)
			}
		}
	}
	// Directive order decides, "any" included (ngx_http_file_cache_valid).
	rules := []ValidRule{mustValid(t, "any", "1m"), mustValid(t, "200", "1h")}
	if got := ValidFor(rules, 200); got != time.Minute {
		t.Fatalf("ValidFor = %v", got)
	}
}

func mustValid(t *testing.T, args ...string) ValidRule {
	t.Helper()
	r, err := ParseValid(args)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseIgnoreHeaders(t *testing.T) {
	s, err := ParseIgnoreHeaders([]string{"x-accel-expires", "Set-Cookie", "Cache-Control", "Vary"})
	if err != nil || s != IgnoreXAccelExpires|IgnoreSetCookie|IgnoreCacheControl|IgnoreVary {
		t.Fatalf("%b %v", s, err)
	}
	if _, err := ParseIgnoreHeaders([]string{"Pragma"}); err == nil || err.Error() != `invalid value "Pragma"` {
		t.Fatalf("err %v", err)
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func FuzzFreshness(f *testing.F) {
	seeds := [][4]string{
		{"public, max-age=3600", "", "", ""},
		{"private, no-cache, no-store, must-revalidate", "Thu, 01 Jan 1970 00:00:00 GMT", "", ""},
		{"max-age=0, s-maxage=600", "", "", ""},
		{"s-maxage=31536000, stale-while-revalidate=60, stale-if-error=86400", "", "", "5"},
		{`max-age="120", no-cache="set-cookie"`, "Wed, 21 Oct 2015 07:28:00 GMT", "", ""},
		{"", "Sun Nov  6 08:49:37 1994", "@1700000000", ""},
		{"", "Sunday, 06-Nov-94 08:49:37 GMT", "0", ""},
		{"no-transform", "-1", "3600", "abc"},
		{"max-age=99999999999999999999999999", "", "99999999999999999999", "99999999999999999999"},
		{`max-age="60`, "", "@", ""},
		{`,,,=,"\`, "\x00\xff", "@-5", "-1"},
		{"max-age=60;foo=bar, immutable", "", " 60", ""},
	}
	for _, s := range seeds {
		f.Add(200, s[0], s[1], s[2], s[3], uint16(0))
	}
	f.Fuzz(func(t *testing.T, status int, cc, exp, xae, age string, ign uint16) {
		h := hdrs()
		if cc != "" {
			h.Add([]byte("Cache-Control"), []byte(cc))
		}
		if exp != "" {
			h.Add([]byte("Expires"), []byte(exp))
		}
		if xae != "" {
			h.Add([]byte("X-Accel-Expires"), []byte(xae))
		}
		if age != "" {
			h.Add([]byte("Age"), []byte(age))
		}
		valid := []ValidRule{{Codes: []int{200}, TTL: time.Minute}}
		d := Evaluate(status, &h, valid, IgnoreSet(ign), t0)
		if d.Cacheable != (d.TTL > 0) || (d.Cacheable && d.Source == SourceNone) {
			t.Fatalf("inconsistent %+v", d)
		}
		if d.StaleIfError < 0 || d.StaleWhileRevalidate < 0 {
			t.Fatalf("negative stale window %+v", d)
		}
		// The verdict must not depend on the order of the header lines.
		var r ResponseHeaders
		if age != "" {
			r.Add([]byte("age"), []byte(age))
		}
		if xae != "" {
			r.Add([]byte("x-accel-expires"), []byte(xae))
		}
		if exp != "" {
			r.Add([]byte("expires"), []byte(exp))
		}
		if cc != "" {
			r.Add([]byte("cache-control"), []byte(cc))
		}
		if d2 := Evaluate(status, &r, valid, IgnoreSet(ign), t0); d2 != d {
			t.Fatalf("order dependent: %+v vs %+v", d, d2)
		}
	})
}

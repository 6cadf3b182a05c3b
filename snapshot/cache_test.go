package snapshot

import (
	"net/netip"
	"strings"
	"testing"
)

// proxy_cache_purge parses the ngx_cache_purge syntax; mistakes are -t
// errors with file:line.
func TestPurgeDirective(t *testing.T) {
	conf := func(d string) string {
		return `events {} http { proxy_cache_path /tmp/x keys_zone=z:1m; server { listen 127.0.0.1:8089; location / { proxy_pass http://127.0.0.1:1; proxy_cache z; ` + d + ` } } }`
	}
	for _, bad := range []struct{ d, want string }{
		{"proxy_cache_purge purge;", `invalid method "purge"`},
		{"proxy_cache_purge on 127.0.0.1;", `expected "from"`},
		{"proxy_cache_purge on from;", `expected "from"`},
		{"proxy_cache_purge on from 1.2.3;", `invalid address "1.2.3"`},
		{"proxy_cache_purge off from all;", "invalid number of arguments"},
	} {
		_, _, err := compileText(t, conf(bad.d))
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "nginx.conf:1") {
			t.Errorf("%s: %v, want %q with file:line", bad.d, err, bad.want)
		}
	}
	for _, ok := range []struct {
		d       string
		method  string
		allowed []string
		denied  []string
	}{
		{"proxy_cache_purge on;", "PURGE", []string{"10.0.0.1", "127.0.0.1"}, nil},
		{"proxy_cache_purge BAN from 127.0.0.1 10.0.0.0/8;", "BAN", []string{"127.0.0.1", "10.9.9.9"}, []string{"127.0.0.2", "11.0.0.1"}},
		{"proxy_cache_purge on from 127.0.0.1 all;", "PURGE", []string{"192.168.1.1"}, nil},
	} {
		s, _, err := compileText(t, conf(ok.d))
		if err != nil {
			t.Fatalf("%s: %v", ok.d, err)
		}
		p := s.Listeners[0].Default.Locs[0].Cache.Purge
		if p == nil || string(p.Method) != ok.method {
			t.Fatalf("%s: %+v", ok.d, p)
		}
		for _, a := range ok.allowed {
			if !p.Allows(netip.MustParseAddr(a)) {
				t.Errorf("%s: %s denied", ok.d, a)
			}
		}
		for _, a := range ok.denied {
			if p.Allows(netip.MustParseAddr(a)) {
				t.Errorf("%s: %s allowed", ok.d, a)
			}
		}
	}
	s, _, err := compileText(t, conf("proxy_cache_purge off;"))
	if err != nil || s.Listeners[0].Default.Locs[0].Cache.Purge != nil {
		t.Fatalf("off: %v", err)
	}
}

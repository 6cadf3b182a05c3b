package snapshot

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"edgeproxy/cachestore"
	"edgeproxy/config"
	"edgeproxy/fleet"
)

// CacheConf is a location's merged proxy_cache settings.
type CacheConf struct {
	Zone        *cachestore.Zone // nil: proxy_cache off
	Key         *Template
	Valid       []cachestore.ValidRule
	MethodHEAD  bool // proxy_cache_methods includes HEAD (GET always does)
	MethodPOST  bool
	Bypass      []Template
	NoCache     []Template
	MinUses     int
	Lock        bool
	LockTimeout time.Duration
	UseStale    UseStale
	Ignore      cachestore.IgnoreSet
	ConvertHead bool
	// Revalidate is proxy_cache_revalidate: an expired entry with an ETag
	// or Last-Modified is fetched with If-None-Match/If-Modified-Since,
	// and a 304 refreshes it (REVALIDATED).
	Revalidate bool
	// BackgroundUpdate is proxy_cache_background_update: an expired entry
	// that may be served stale (UseStale.Updating or stale-while-revalidate)
	// is answered at once (STALE) while a background request refreshes it.
	BackgroundUpdate bool
	// Purge is the proxy_cache_purge extension; nil when off.
	Purge *PurgeConf
	// Fleet spreads purges of Zone to the other nodes (proxy_cache_path
	// ... redis=ADDR, an edgeproxy extension); nil when the zone is local.
	Fleet *fleet.Purger
}

// PurgeConf is `proxy_cache_purge on|METHOD [from all|ADDRESS|CIDR ...]`
// (the syntax of the ngx_cache_purge module): a request with Method from
// an allowed address removes the entry of its cache key, or every entry
// whose key starts with it when the key ends in '*'.
type PurgeConf struct {
	Method []byte
	From   []netip.Prefix // nil: any address ("from all" or no "from")
}

// Allows reports whether a client at addr (invalid for unix-socket
// clients, which are allowed only with "from all") may purge.
func (p *PurgeConf) Allows(addr netip.Addr) bool {
	if p.From == nil {
		return true
	}
	for _, pr := range p.From {
		if addr.IsValid() && pr.Contains(addr) {
			return true
		}
	}
	return false
}

func parsePurge(d *config.Directive) (*PurgeConf, error) {
	a := d.Args
	p := &PurgeConf{Method: []byte("PURGE")}
	switch m := a[0]; {
	case m == "off":
		if len(a) > 1 {
			return nil, errAt(d, "invalid number of arguments in \"%s\" directive", d.Name)
		}
		return nil, nil
	case m == "on":
	case m != "" && strings.Trim(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == "":
		p.Method = []byte(m)
	default:
		return nil, errAt(d, "invalid method %q in \"%s\" directive", m, d.Name)
	}
	if len(a) == 1 {
		return p, nil
	}
	if a[1] != "from" || len(a) == 2 {
		return nil, errAt(d, "invalid parameter %q in \"%s\" directive, expected \"from\" and addresses", a[1], d.Name)
	}
	for _, s := range a[2:] {
		if s == "all" {
			p.From = nil
			return p, nil
		}
		var pr netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			pr, err = netip.ParsePrefix(s)
			pr = pr.Masked()
		} else {
			var ip netip.Addr
			ip, err = netip.ParseAddr(s)
			pr = netip.PrefixFrom(ip, ip.BitLen())
		}
		if err != nil {
			return nil, errAt(d, "invalid address %q in \"%s\" directive", s, d.Name)
		}
		p.From = append(p.From, pr)
	}
	return p, nil
}

// UseStale is the proxy_cache_use_stale set.
type UseStale struct {
	Error, Timeout, InvalidHeader, Updating, HTTP500, HTTP502, HTTP503, HTTP504, HTTP403, HTTP404, HTTP429 bool
}

var defaultCacheKey, _ = CompileTemplate("$scheme$proxy_host$request_uri")

func defaultCache() CacheConf {
	return CacheConf{Key: &defaultCacheKey, MethodHEAD: true, MinUses: 1, LockTimeout: 5 * time.Second, ConvertHead: true}
}

func (c *compiler) cachePaths(ds []*config.Directive) error {
	c.zones = map[string]*cachestore.Zone{}
	for _, d := range ds {
		if d.Name != "proxy_cache_path" {
			continue
		}
		args := make([]string, 0, len(d.Args))
		redisAddr := ""
		for _, a := range d.Args {
			if v, ok := strings.CutPrefix(a, "redis="); ok {
				// edgeproxy extension: purges reach every node.
				if _, _, err := net.SplitHostPort(v); err != nil {
					return errAt(d, "invalid redis address %q", a)
				}
				redisAddr = v
				continue
			}
			args = append(args, a)
		}
		spec, err := cachestore.ParsePath(args)
		if err != nil {
			return errAt(d, "%s", err.Error())
		}
		if _, dup := c.zones[spec.Name]; dup {
			return errAt(d, "duplicate zone %q", spec.Name)
		}
		z, err := shared.cacheZone(spec)
		if err != nil {
			return errAt(d, "%s", err.Error())
		}
		c.zones[spec.Name] = z
		if redisAddr != "" {
			if c.purgers == nil {
				c.purgers = map[string]*fleet.Purger{}
			}
			c.purgers[spec.Name] = shared.purger(z, redisAddr)
		}
		c.note(d, "proxy_cache_path: edgeproxy keeps the cache in memory (max_size bounds it); the disk path is not used")
	}
	return nil
}

func (c *compiler) cacheDirective(d *config.Directive, cc *CacheConf, firsts map[string]bool) error {
	first := !firsts[d.Name]
	firsts[d.Name] = true
	var err error
	switch d.Name {
	case "proxy_cache_path":
		return nil
	case "proxy_cache":
		if d.Args[0] == "off" {
			cc.Zone = nil
			return nil
		}
		z, ok := c.zones[d.Args[0]]
		if !ok {
			return errAt(d, "\"proxy_cache\" zone %q is unknown", d.Args[0])
		}
		cc.Zone = z
		cc.Fleet = c.purgers[d.Args[0]]
	case "proxy_cache_key":
		t, e := c.tmpl(d, d.Args[0])
		if e != nil {
			return e
		}
		cc.Key = &t
	case "proxy_cache_valid":
		if first {
			cc.Valid = nil
		}
		r, e := cachestore.ParseValid(d.Args)
		if e != nil {
			return errAt(d, "%s", e.Error())
		}
		cc.Valid = append(cc.Valid, r)
	case "proxy_cache_methods":
		cc.MethodHEAD, cc.MethodPOST = false, false
		for _, m := range d.Args {
			switch m {
			case "GET":
			case "HEAD":
				cc.MethodHEAD = true
			case "POST":
				cc.MethodPOST = true
			default:
				return errAt(d, "invalid value %q", m)
			}
		}
		cc.MethodHEAD = true // nginx always adds GET and HEAD
	case "proxy_cache_bypass", "proxy_no_cache":
		var list []Template
		if !first {
			if d.Name == "proxy_cache_bypass" {
				list = cc.Bypass
			} else {
				list = cc.NoCache
			}
		}
		for _, a := range d.Args {
			t, e := c.tmpl(d, a)
			if e != nil {
				return e
			}
			list = append(list, t)
		}
		if d.Name == "proxy_cache_bypass" {
			cc.Bypass = list
		} else {
			cc.NoCache = list
		}
	case "proxy_cache_min_uses":
		cc.MinUses, err = positive(d, d.Args[0])
	case "proxy_cache_lock":
		cc.Lock = d.Args[0] == "on"
	case "proxy_cache_lock_timeout":
		cc.LockTimeout, err = dur(d, d.Args[0])
	case "proxy_cache_lock_age":
		_, err = dur(d, d.Args[0])
	case "proxy_cache_use_stale":
		cc.UseStale = UseStale{}
		for _, a := range d.Args {
			u := &cc.UseStale
			switch a {
			case "off":
			case "error":
				u.Error = true
			case "timeout":
				u.Timeout = true
			case "invalid_header":
				u.InvalidHeader = true
			case "updating":
				u.Updating = true
			case "http_500":
				u.HTTP500 = true
			case "http_502":
				u.HTTP502 = true
			case "http_503":
				u.HTTP503 = true
			case "http_504":
				u.HTTP504 = true
			case "http_403":
				u.HTTP403 = true
			case "http_404":
				u.HTTP404 = true
			case "http_429":
				u.HTTP429 = true
			default:
				return errAt(d, "invalid value %q", a)
			}
		}
	case "proxy_ignore_headers":
		cc.Ignore, err = cachestore.ParseIgnoreHeaders(d.Args)
		if err != nil {
			err = errAt(d, "%s", err.Error())
		}
	case "proxy_cache_convert_head":
		cc.ConvertHead = d.Args[0] == "on"
	case "proxy_cache_revalidate":
		cc.Revalidate = d.Args[0] == "on"
	case "proxy_cache_background_update":
		cc.BackgroundUpdate = d.Args[0] == "on"
	case "proxy_cache_purge":
		cc.Purge, err = parsePurge(d)
	default:
		return errAt(d, "%q directive is not supported by edgeproxy", d.Name)
	}
	return err
}

var _ = strconv.Itoa

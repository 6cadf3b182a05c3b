package snapshot

import (
	"strconv"
	"time"

	"edgeproxy/cachestore"
	"edgeproxy/config"
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
		spec, err := cachestore.ParsePath(d.Args)
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
	case "proxy_cache_revalidate", "proxy_cache_background_update":
		if d.Args[0] == "on" {
			return errAt(d, `"%s on" is not supported by edgeproxy yet`, d.Name)
		}
	default:
		return errAt(d, "%q directive is not supported by edgeproxy", d.Name)
	}
	return err
}

var _ = strconv.Itoa

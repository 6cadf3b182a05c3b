package snapshot

import (
	"regexp"
	"strconv"
	"strings"

	"edgeproxy/config"
)

// Gzip is a location's merged gzip settings (ngx_http_gzip_filter_module
// and the gzip_* core directives).
type Gzip struct {
	On          bool
	Vary        bool
	Level       int
	MinLength   int64
	HTTP10      bool            // gzip_http_version 1.0
	Types       map[string]bool // text/html is always included
	AnyType     bool            // gzip_types *
	Proxied     GzipProxied
	DisableMSIE bool
	Disable     []*regexp.Regexp
	// Static is gzip_static: serve FILE.gz next to FILE.
	Static GzipStatic
}

// GzipStatic is gzip_static's value.
type GzipStatic uint8

// gzip_static values (ngx_http_gzip_static_module).
const (
	GzipStaticOff GzipStatic = iota
	// GzipStaticOn serves the .gz file to clients that accept gzip
	// (ngx_http_gzip_ok), with "Vary: Accept-Encoding" under gzip_vary.
	GzipStaticOn
	// GzipStaticAlways serves it to every client, without Vary.
	GzipStaticAlways
)

// GzipProxied is the gzip_proxied bit set.
type GzipProxied uint16

// gzip_proxied flags (ngx_http_gzip_proxied_mask).
const (
	ProxiedExpired GzipProxied = 1 << iota
	ProxiedNoCache
	ProxiedNoStore
	ProxiedPrivate
	ProxiedNoLastModified
	ProxiedNoETag
	ProxiedAuth
	ProxiedAny
	ProxiedOff
)

func defaultGzip() Gzip {
	return Gzip{Level: 1, MinLength: 20, Types: map[string]bool{"text/html": true}, Proxied: ProxiedOff}
}

func (c *compiler) gzipDirective(d *config.Directive, g *Gzip, firsts map[string]bool) error {
	first := !firsts[d.Name]
	firsts[d.Name] = true
	switch d.Name {
	case "gzip":
		g.On = d.Args[0] == "on"
	case "gzip_vary":
		g.Vary = d.Args[0] == "on"
	case "gzip_comp_level":
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n < 1 || n > 9 {
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
		g.Level = n
	case "gzip_min_length":
		n, err := config.ParseSize(d.Args[0])
		if err != nil {
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
		g.MinLength = n
	case "gzip_http_version":
		switch d.Args[0] {
		case "1.0":
			g.HTTP10 = true
		case "1.1":
			g.HTTP10 = false
		default:
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
	case "gzip_types":
		if first {
			g.Types = map[string]bool{"text/html": true}
			g.AnyType = false
		}
		for _, a := range d.Args {
			if a == "*" {
				g.AnyType = true
				continue
			}
			g.Types[strings.ToLower(a)] = true
		}
	case "gzip_proxied":
		if first {
			g.Proxied = 0
		}
		for _, a := range d.Args {
			switch a {
			case "off":
				g.Proxied |= ProxiedOff
			case "expired":
				g.Proxied |= ProxiedExpired
			case "no-cache":
				g.Proxied |= ProxiedNoCache
			case "no-store":
				g.Proxied |= ProxiedNoStore
			case "private":
				g.Proxied |= ProxiedPrivate
			case "no_last_modified":
				g.Proxied |= ProxiedNoLastModified
			case "no_etag":
				g.Proxied |= ProxiedNoETag
			case "auth":
				g.Proxied |= ProxiedAuth
			case "any":
				g.Proxied |= ProxiedAny
			default:
				return errAt(d, "invalid value %q in %q directive", a, d.Name)
			}
		}
	case "gzip_disable":
		if first {
			g.Disable, g.DisableMSIE = nil, false
		}
		for _, a := range d.Args {
			if a == "msie6" {
				g.DisableMSIE = true
				continue
			}
			re, err := regexp.Compile("(?i)" + a)
			if err != nil {
				return errAt(d, "%s", err.Error())
			}
			g.Disable = append(g.Disable, re)
		}
	case "gzip_static":
		switch d.Args[0] {
		case "off":
			g.Static = GzipStaticOff
		case "on":
			g.Static = GzipStaticOn
		case "always":
			g.Static = GzipStaticAlways
		default:
			return errAt(d, "invalid value %q", d.Args[0]) // ngx_conf_set_enum_slot
		}
	}
	return nil
}

package snapshot

import (
	"strconv"
	"strings"

	"edgeproxy/config"
)

// Encoding is a location's settings for one of edgeproxy's extra response
// encodings (edgeproxy extensions, named like the ngx_brotli and
// zstd-nginx-module third-party modules): `brotli on|off`, `brotli_types`,
// `brotli_comp_level`, `brotli_min_length`, `brotli_static on|off|always`,
// and the same with the `zstd` prefix.
type Encoding struct {
	On        bool
	Types     map[string]bool // text/html is always included
	AnyType   bool
	Level     int
	MinLength int64
	Static    GzipStatic // FILE.br / FILE.zst next to FILE
}

func defaultBrotli() Encoding {
	return Encoding{Types: map[string]bool{"text/html": true}, Level: 6, MinLength: 20}
}

func defaultZstd() Encoding {
	return Encoding{Types: map[string]bool{"text/html": true}, Level: 1, MinLength: 20}
}

// Eligible reports whether a response of media type mt (lowercase, no
// parameters) and length clen (-1: unknown) may be encoded.
func (e *Encoding) Eligible(mt []byte, clen int64) bool {
	if !e.On || clen >= 0 && clen < e.MinLength {
		return false
	}
	return e.AnyType || e.Types[string(mt)]
}

// encodingDirective compiles the brotli_* and zstd_* directives.
func (c *compiler) encodingDirective(d *config.Directive, loc *Location, firsts map[string]bool) error {
	e, prefix, maxLevel := &loc.Brotli, "brotli", 11
	minLevel := 0
	if strings.HasPrefix(d.Name, "zstd") {
		e, prefix, maxLevel, minLevel = &loc.Zstd, "zstd", 22, 1
	}
	first := !firsts[d.Name]
	firsts[d.Name] = true
	switch strings.TrimPrefix(d.Name, prefix) {
	case "":
		e.On = d.Args[0] == "on"
	case "_comp_level":
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n < minLevel || n > maxLevel {
			return errAt(d, "invalid value %q in %q directive, it must be between %d and %d", d.Args[0], d.Name, minLevel, maxLevel)
		}
		e.Level = n
	case "_min_length":
		n, err := config.ParseSize(d.Args[0])
		if err != nil {
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
		e.MinLength = n
	case "_types":
		if first {
			e.Types = map[string]bool{"text/html": true}
			e.AnyType = false
		}
		for _, a := range d.Args {
			if a == "*" {
				e.AnyType = true
				continue
			}
			e.Types[strings.ToLower(a)] = true
		}
	case "_static":
		switch d.Args[0] {
		case "off":
			e.Static = GzipStaticOff
		case "on":
			e.Static = GzipStaticOn
		case "always":
			e.Static = GzipStaticAlways
		default:
			return errAt(d, "invalid value %q", d.Args[0])
		}
	default:
		return c.other(d)
	}
	return nil
}

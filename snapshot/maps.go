package snapshot

import (
	"regexp"
	"strings"

	"edgeproxy/config"
)

// Map is a compiled `map SOURCE $var { ... }` (ngx_http_map_module): exact
// keys first, then regular expressions in order, then default. Values may
// contain variables.
type Map struct {
	Name    string
	Source  Template
	Exact   map[string]*Template
	Regexes []mapRegex
	Default *Template
}

type mapRegex struct {
	re  *regexp.Regexp
	val *Template
}

// Lookup returns the value template for key (nil: empty value). Any
// goroutine; it does not allocate (string(key) in a map index does not).
func (m *Map) Lookup(key []byte) *Template {
	if t, ok := m.Exact[string(key)]; ok {
		return t
	}
	for i := range m.Regexes {
		if m.Regexes[i].re.Match(key) {
			return m.Regexes[i].val
		}
	}
	return m.Default
}

func (c *compiler) mapBlocks(ds []*config.Directive) error {
	c.maps = map[string]int{}
	// Names first, so map values may refer to other maps.
	for _, d := range ds {
		if d.Name != "map" {
			continue
		}
		if len(d.Args) != 2 || !strings.HasPrefix(d.Args[1], "$") {
			return errAt(d, "invalid number of arguments in \"map\" directive")
		}
		name := strings.ToLower(d.Args[1][1:])
		if _, dup := c.maps[name]; dup {
			return errAt(d, "the duplicate %q variable", name)
		}
		c.maps[name] = len(c.snap.Maps)
		c.snap.Maps = append(c.snap.Maps, &Map{Name: name, Exact: map[string]*Template{}})
	}
	for _, d := range ds {
		if d.Name != "map" {
			continue
		}
		m := c.snap.Maps[c.maps[strings.ToLower(d.Args[1][1:])]]
		src, err := c.tmpl(d, d.Args[0])
		if err != nil {
			return err
		}
		m.Source = src
		for _, e := range d.Block {
			key := e.Name
			switch key {
			case "hostnames":
				return errAt(e, "\"hostnames\" in map is not supported by edgeproxy yet")
			case "volatile":
				continue
			case "include":
				return errAt(e, "\"include\" inside map is not supported by edgeproxy yet")
			}
			if len(e.Args) != 1 {
				return errAt(e, "invalid number of the map parameters")
			}
			val, err := c.tmpl(e, e.Args[0])
			if err != nil {
				return err
			}
			switch {
			case key == "default":
				m.Default = &val
			case strings.HasPrefix(key, "~*"):
				re, err := regexp.Compile("(?i)" + key[2:])
				if err != nil {
					return errAt(e, "%s", err.Error())
				}
				m.Regexes = append(m.Regexes, mapRegex{re, &val})
			case strings.HasPrefix(key, "~"):
				re, err := regexp.Compile(key[1:])
				if err != nil {
					return errAt(e, "%s", err.Error())
				}
				m.Regexes = append(m.Regexes, mapRegex{re, &val})
			default:
				if strings.HasPrefix(key, "\\") {
					key = key[1:]
				}
				m.Exact[key] = &val
			}
		}
	}
	return nil
}

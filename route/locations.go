package route

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Spec describes one location block as written in nginx.conf.
type Spec struct {
	// Modifier is "", "=", "^~", "~", "~*" or "@". A Pattern starting
	// with '@' and an empty Modifier is also a named location (nginx's own
	// spelling "location @name").
	Modifier string
	// Pattern is the URI prefix, the exact URI, the regex (PCRE syntax,
	// see CompileRegex) or the location name (with or without '@').
	Pattern string
	// Index is the caller's payload id, returned by Match and Named.
	Index int
	// AutoRedirect must be set when the location contains proxy_pass,
	// fastcgi_pass, uwsgi_pass, scgi_pass, memcached_pass or grpc_pass.
	// nginx then answers a request for the location's name without its
	// trailing '/' with a 301 (clcf->auto_redirect); it only takes effect
	// for prefix and exact locations whose Pattern ends in '/'.
	AutoRedirect bool
	// Children are the nested locations, in configuration order.
	Children []Spec
}

const (
	modPrefix = iota
	modExact
	modNoRegex
	modRegex
	modNamed
)

// loc is one compiled location (ngx_http_core_loc_conf_t). The server level
// is the pseudo-location Locations.root.
type loc struct {
	index        int
	mod          int
	name         string // nginx's clcf->name: pattern, regex source or "@name"
	re           *regexp.Regexp
	groups       bool // re has capture groups
	autoRedirect bool
	children     []*loc // config order, used only while building

	static *tnode // ngx_http_core_loc_conf_t.static_locations
	regex  []*loc // ngx_http_core_loc_conf_t.regex_locations, config order
}

// tnode is ngx_http_location_tree_node_t: a binary search tree over the
// sorted static (exact and prefix) locations of one level, where each node
// owns, in tree, the locations that have its name as a prefix (with that
// prefix stripped).
type tnode struct {
	left, right, tree *tnode
	name              string
	exact, inclusive  *loc
	autoRedirect      bool
}

// Locations is the location configuration of one server, matched with the
// algorithm of ngx_http_core_find_location. The zero value is an empty set
// ready for Add. Add and Build must be called by a single goroutine; after
// Build, Match, MatchRedirect and Named may be called concurrently.
//
// Complexity per request: the static (exact and prefix) lookup descends
// nginx's static location tree, O(log n) name comparisons per nesting level
// of prefixes, each comparing at most the node's name; regexes are then
// tried linearly in configuration order, as nginx does.
type Locations struct {
	root  loc
	named map[string]int
	built bool
}

// NewLocations returns an empty location set; equivalent to new(Locations).
func NewLocations() *Locations { return new(Locations) }

// Add adds a server-level location (with its nested locations). Locations
// must be added in configuration order. It returns nginx's configuration
// error for invalid modifiers, uncompilable regexes, misplaced nested
// locations and duplicates. Only the building goroutine may call it.
func (l *Locations) Add(spec Spec) error {
	if l.built {
		return ErrBuilt
	}
	n, err := compileLoc(&spec, &l.root, l.root.children)
	if err != nil {
		return err
	}
	l.root.children = append(l.root.children, n)
	return nil
}

func compileLoc(s *Spec, parent *loc, siblings []*loc) (*loc, error) {
	n := &loc{index: s.Index, name: s.Pattern, autoRedirect: s.AutoRedirect}
	switch s.Modifier {
	case "":
		n.mod = modPrefix
		if strings.HasPrefix(s.Pattern, "@") {
			n.mod = modNamed
		}
	case "=":
		n.mod = modExact
	case "^~":
		n.mod = modNoRegex
	case "~", "~*":
		n.mod = modRegex
		re, err := CompileRegex(s.Pattern, s.Modifier == "~*")
		if err != nil {
			return nil, err
		}
		n.re, n.groups = re, re.NumSubexp() > 0
	case "@":
		n.mod = modNamed
	default:
		return nil, fmt.Errorf("invalid location modifier %q", s.Modifier)
	}
	if n.mod == modNamed && !strings.HasPrefix(n.name, "@") {
		n.name = "@" + n.name
	}

	// Nesting rules, in the order ngx_http_core_location checks them.
	// Like nginx (pclcf->name.len), only a parent with a name is a
	// location; the server level has none.
	if parent.name != "" {
		switch {
		case parent.mod == modExact:
			return nil, fmt.Errorf("location %q cannot be inside the exact location %q", n.name, parent.name)
		case parent.mod == modNamed:
			return nil, fmt.Errorf("location %q cannot be inside the named location %q", n.name, parent.name)
		case n.mod == modNamed:
			return nil, fmt.Errorf("named location %q can be on the server level only", n.name)
		case n.mod != modRegex && !strings.HasPrefix(n.name, parent.name):
			// For a regex parent nginx compares against the regex source
			// text, so this is (quirkily) a literal prefix check there too.
			return nil, fmt.Errorf("location %q is outside location %q", n.name, parent.name)
		}
	}

	// ngx_http_join_exact_locations: two exact or two inclusive ("" and
	// "^~") locations with the same name on one level are an error.
	// Regex and named duplicates are accepted by nginx (first one wins).
	if n.mod == modExact || n.mod == modPrefix || n.mod == modNoRegex {
		for _, o := range siblings {
			if o.name == n.name && (o.mod == modExact) == (n.mod == modExact) &&
				(o.mod == modExact || o.mod == modPrefix || o.mod == modNoRegex) {
				return nil, fmt.Errorf("duplicate location %q", n.name)
			}
		}
	}

	for i := range s.Children {
		c, err := compileLoc(&s.Children[i], n, n.children)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
	return n, nil
}

// Build compiles the static location trees. Afterwards only Match,
// MatchRedirect and Named may be called. Only the building goroutine may
// call it; calling it again is a no-op.
func (l *Locations) Build() error {
	if l.built {
		return nil
	}
	l.named = map[string]int{}
	for _, c := range l.root.children {
		if c.mod == modNamed {
			// ngx_http_named_location takes the first one in the
			// (stable-)sorted list, i.e. the first in config order.
			if _, dup := l.named[c.name]; !dup {
				l.named[c.name] = c.index
			}
		}
	}
	buildLevel(&l.root)
	l.built = true
	return nil
}

// qent is ngx_http_location_queue_t.
type qent struct {
	name             string
	exact, inclusive *loc
	list             []*qent
}

func buildLevel(p *loc) {
	var static []*qent
	for _, c := range p.children {
		buildLevel(c)
		switch c.mod {
		case modRegex:
			p.regex = append(p.regex, c)
		case modExact:
			static = append(static, &qent{name: c.name, exact: c})
		case modPrefix, modNoRegex:
			static = append(static, &qent{name: c.name, inclusive: c})
		}
	}
	// ngx_http_cmp_locations: filename order with '/' lowest, a shorter
	// name before its extensions, an exact location before the inclusive
	// one of the same name. Stable, like ngx_queue_sort.
	sort.SliceStable(static, func(i, j int) bool {
		a, b := static[i], static[j]
		if a.name == b.name {
			return a.exact != nil && b.exact == nil
		}
		return cmpSort(a.name, b.name) < 0
	})
	// ngx_http_join_exact_locations (duplicates were rejected by Add).
	joined := static[:0]
	for _, q := range static {
		if k := len(joined); k > 0 && joined[k-1].name == q.name {
			if q.inclusive != nil {
				joined[k-1].inclusive = q.inclusive
			}
			continue
		}
		joined = append(joined, q)
	}
	p.static = createTree(createList(joined), 0)
	p.children = nil
}

// createList is ngx_http_create_locations_list: every inclusive location
// takes the following locations it is a prefix of as its sub-list.
func createList(items []*qent) []*qent {
	var out []*qent
	for i := 0; i < len(items); {
		q := items[i]
		j := i + 1
		if q.inclusive != nil {
			for j < len(items) && strings.HasPrefix(items[j].name, q.name) {
				j++
			}
			q.list = createList(items[i+1 : j])
		}
		out = append(out, q)
		i = j
	}
	return out
}

// createTree is ngx_http_create_locations_tree (middle element as root,
// same as ngx_queue_middle).
func createTree(items []*qent, prefix int) *tnode {
	if len(items) == 0 {
		return nil
	}
	mid := len(items) / 2
	q := items[mid]
	n := &tnode{
		name:      q.name[prefix:],
		exact:     q.exact,
		inclusive: q.inclusive,
		autoRedirect: (q.exact != nil && q.exact.redirects()) ||
			(q.inclusive != nil && q.inclusive.redirects()),
	}
	n.left = createTree(items[:mid], prefix)
	n.right = createTree(items[mid+1:], prefix)
	n.tree = createTree(q.list, len(q.name))
	return n
}

// redirects reports clcf->auto_redirect: the *_pass handlers set it only
// when the location name ends in '/'.
func (c *loc) redirects() bool {
	return c.autoRedirect && strings.HasSuffix(c.name, "/")
}

// cmpByte is ngx_filename_cmp's per-byte order on Linux (case-sensitive):
// '/' sorts lowest so that "/a/" < "/a-" and a prefix's extensions by path
// segment come first.
func cmpByte(c1, c2 byte) int {
	if c1 == '/' {
		c1 = 0
	}
	if c2 == '/' {
		c2 = 0
	}
	return int(c1) - int(c2)
}

// cmpN compares the first n bytes (both have at least n).
func cmpN(a []byte, b string, n int) int {
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return cmpByte(a[i], b[i])
		}
	}
	return 0
}

func cmpSort(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return cmpByte(a[i], b[i])
		}
	}
	return len(a) - len(b)
}

// Results of the static lookup, as in ngx_http_core_find_static_location.
const (
	rcDeclined = iota
	rcAgain    // a prefix location matched; nested and regex locations next
	rcOK       // final (exact location, or a regex location)
	rcDone     // auto redirect (301 to uri + "/")
)

func findStatic(node *tnode, uri []byte) (*loc, int) {
	var found *loc
	rv := rcDeclined
	for node != nil {
		n := min(len(uri), len(node.name))
		if c := cmpN(uri, node.name, n); c != 0 {
			if c < 0 {
				node = node.left
			} else {
				node = node.right
			}
			continue
		}
		if len(uri) > len(node.name) {
			if node.inclusive != nil {
				found, rv = node.inclusive, rcAgain
				uri = uri[len(node.name):]
				node = node.tree
				continue
			}
			// exact only
			node = node.right
			continue
		}
		if len(uri) == len(node.name) {
			if node.exact != nil {
				return node.exact, rcOK
			}
			return node.inclusive, rcAgain
		}
		// len(uri) < len(node.name)
		if len(uri)+1 == len(node.name) && node.autoRedirect {
			found = node.inclusive
			if node.exact != nil {
				found = node.exact
			}
			rv = rcDone
		}
		node = node.left
	}
	return found, rv
}

// find is ngx_http_core_find_location with p as the current location
// (pclcf). It returns the selected location (r->loc_conf; p itself when
// nothing inside p matched), nginx's return code, and the last matched
// regex location that has capture groups (whose captures nginx keeps).
func find(p *loc, uri []byte) (cur *loc, rc int, capLoc *loc) {
	cur = p
	noregex := false
	l, rc := findStatic(p.static, uri)
	if rc != rcDeclined {
		cur = l
	}
	if rc == rcAgain {
		noregex = l.mod == modNoRegex
		// look up nested locations
		cur, rc, capLoc = find(l, uri)
	}
	if rc == rcOK || rc == rcDone {
		return cur, rc, capLoc
	}
	// rc is declined or again (in a nested location). Regexes nested in
	// the longest prefix were tried by the recursive call above, before
	// these ones.
	if !noregex {
		for _, r := range p.regex {
			if !r.re.Match(uri) {
				continue
			}
			if r.groups {
				capLoc = r
			}
			c, _, cl := find(r, uri)
			if cl != nil {
				capLoc = cl
			}
			// nginx returns NGX_OK here even if the nested lookup said
			// NGX_DONE, so an auto redirect nested in a regex location
			// is not performed.
			return c, rcOK, capLoc
		}
	}
	return cur, rc, capLoc
}

// Match selects the location for uri (nginx's r->uri: the decoded,
// normalised path without arguments). ok is false when no location matches
// (nginx then uses the server-level configuration). The index is the
// selected Spec's Index; with nested locations it is the innermost match.
//
// When AutoRedirect is used, call MatchRedirect instead: Match reports a
// redirect result as an ordinary match of the location it redirects to.
//
// caps: nil means captures are not needed (no allocation). Otherwise
// capsOut holds the capture offsets into uri of the last matched regex that
// has capture groups (use Captures to read $1..$9; named groups via
// CompileRegex(...).SubexpIndex), reusing caps's storage; capsOut is
// caps[:0] when there are none. Safe for concurrent use after Build.
func (l *Locations) Match(uri []byte, caps []int) (index int, capsOut []int, ok bool) {
	index, capsOut, _, ok = l.MatchRedirect(uri, caps)
	return index, capsOut, ok
}

// MatchRedirect is Match that also reports nginx's auto redirect
// (NGX_DONE from ngx_http_core_find_location): redirect is true when the
// request must be answered with a 301 to uri+"/" (plus the query string),
// in the context of location index. Safe for concurrent use after Build.
func (l *Locations) MatchRedirect(uri []byte, caps []int) (index int, capsOut []int, redirect, ok bool) {
	if caps != nil {
		capsOut = caps[:0]
	}
	cur, rc, capLoc := find(&l.root, uri)
	if cur == &l.root {
		return -1, capsOut, false, false
	}
	if caps != nil && capLoc != nil {
		capsOut = submatch(capLoc.re, uri, caps)
	}
	return cur.index, capsOut, rc == rcDone, true
}

// Named returns the payload of the named location "@name" (the leading '@'
// is optional), for try_files/error_page/post_action fallbacks. Named
// locations are never selected by Match. Safe for concurrent use after
// Build.
func (l *Locations) Named(name string) (int, bool) {
	if !strings.HasPrefix(name, "@") {
		name = "@" + name
	}
	i, ok := l.named[name]
	return i, ok
}

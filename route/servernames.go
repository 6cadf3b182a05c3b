package route

import (
	"fmt"
	"regexp"
	"strings"
)

// Warning is a non-fatal diagnostic returned by ServerNames.Add, equivalent
// to an nginx "[warn]" line at configuration load. The name concerned was
// handled the way nginx handles it (a conflicting name is ignored, so the
// first server keeps it). Callers print Msg followed by nginx's " on ADDR"
// suffix. The zero value is an empty message.
type Warning struct {
	Msg string
}

func (w *Warning) Error() string { return w.Msg }

// ServerNames selects the virtual server for a Host value among the servers
// sharing one listen address, like ngx_http_find_virtual_server. The zero
// value is not usable: create it with NewServerNames. Add and Build must be
// called from a single goroutine; after Build, Match may be called
// concurrently by any goroutine.
//
// Priority (ngx_hash_find_combined, then the regex list): exact name,
// longest leading wildcard ("*.example.com", ".example.com"), longest
// trailing wildcard ("www.example.*"), then the first matching regex in
// configuration order. Picking the default server when nothing matches is
// the caller's job, as is adding the implicit "" name nginx gives to a
// server without server_name (ngx_http_core_merge_srv_conf).
//
// Complexity: exact lookup is one map probe; wildcards cost one map probe
// per dot in the host; regexes are tried linearly, as in nginx.
type ServerNames struct {
	exact map[string]int // exact names, incl. the "example.com" of ".example.com"
	// exactKeys mirrors ngx_hash_keys_arrays_t.keys_hash: every exact key
	// seen, used only for conflict detection. It can hold a key that is not
	// in exact (".x" whose wildcard part conflicted).
	exactKeys map[string]bool
	head      map[string]int // "*.example.com" and ".example.com" -> "example.com"
	tail      map[string]int // "www.example.*" -> "www.example"
	regex     []snRegex
	built     bool
}

type snRegex struct {
	re     *regexp.Regexp
	server int
	groups bool
}

// NewServerNames returns an empty set of server names for one listen
// address.
func NewServerNames() *ServerNames {
	return &ServerNames{
		exact:     map[string]int{},
		exactKeys: map[string]bool{},
		head:      map[string]int{},
		tail:      map[string]int{},
	}
}

// Add registers one server_name argument for server (an opaque id chosen by
// the caller). Names must be added in configuration order (servers in file
// order, names in directive order): for duplicates the first one wins and
// regexes are tried in that order. Non-regex names are lowercased, as in
// ngx_http_core_server_name.
//
// err is non-nil for an invalid name or regex (nginx "[emerg]": the
// configuration must be rejected). Otherwise warn, when non-nil, is an
// nginx "[warn]" to print: the name conflicts with an earlier one and was
// ignored, or it contains '/'. Only the building goroutine may call it.
func (s *ServerNames) Add(name string, server int) (warn *Warning, err error) {
	if s.built {
		return nil, ErrBuilt
	}
	// Checks from ngx_http_core_server_name.
	if name != "" {
		ch := name[0]
		if (ch == '*' && (len(name) < 3 || name[1] != '.')) || (ch == '.' && len(name) < 2) {
			return nil, fmt.Errorf("server name %q is invalid", name)
		}
	}
	if strings.IndexByte(name, '/') >= 0 {
		warn = &Warning{Msg: fmt.Sprintf("server name %q has suspicious symbols", name)}
	}
	if name != "" && name[0] == '~' {
		pat := name[1:]
		// nginx compiles server name regexes caselessly iff the pattern
		// contains an upper-case letter (ngx_http_core_server_name).
		caseless := strings.IndexFunc(pat, func(r rune) bool { return r >= 'A' && r <= 'Z' }) >= 0
		re, err := CompileRegex(pat, caseless)
		if err != nil {
			return nil, fmt.Errorf("server name %q: %w", name, err)
		}
		s.regex = append(s.regex, snRegex{re: re, server: server, groups: re.NumSubexp() > 0})
		return warn, nil
	}
	name = strings.ToLower(name)
	conflict, err := s.addKey(name, server)
	if err != nil {
		return nil, err
	}
	if conflict != nil {
		warn = conflict
	}
	return warn, nil
}

// addKey mirrors ngx_hash_add_key(..., NGX_HASH_WILDCARD_KEY): the accepted
// wildcard forms and, importantly, its conflict rules: ".x" conflicts with
// an earlier exact "x" (and then adds nothing), "*.x" and ".x" conflict
// with each other, and an exact "x" conflicts with an earlier ".x" even if
// that one's wildcard part had itself been ignored.
func (s *ServerNames) addKey(name string, server int) (*Warning, error) {
	invalid := fmt.Errorf("invalid server name or wildcard %q", name)
	stars := 0
	for i := 0; i < len(name); i++ {
		switch {
		case name[i] == '*':
			stars++
			if stars > 1 {
				return nil, invalid
			}
		case name[i] == '.' && i+1 < len(name) && name[i+1] == '.':
			return nil, invalid
		case name[i] == 0:
			return nil, invalid
		}
	}
	conflict := &Warning{Msg: fmt.Sprintf("conflicting server name %q, ignored", name)}
	switch {
	case len(name) > 1 && name[0] == '.':
		key := name[1:]
		if s.exactKeys[key] {
			return conflict, nil
		}
		s.exactKeys[key] = true
		if _, dup := s.head[key]; dup {
			return conflict, nil
		}
		s.head[key] = server
		// nginx serves "example.com" for ".example.com" from the wildcard
		// hash (ngx_hash_find_wc_head, n == 0 case); since the exact
		// hash cannot also hold it (conflict above) and both are consulted
		// before any other kind, an exact entry is equivalent.
		s.exact[key] = server
		return nil, nil
	case len(name) > 2 && name[0] == '*' && name[1] == '.':
		key := name[2:]
		if _, dup := s.head[key]; dup {
			return conflict, nil
		}
		s.head[key] = server
		return nil, nil
	case len(name) > 2 && name[len(name)-2] == '.' && name[len(name)-1] == '*':
		key := name[:len(name)-2]
		if _, dup := s.tail[key]; dup {
			return conflict, nil
		}
		s.tail[key] = server
		return nil, nil
	}
	if stars > 0 {
		return nil, invalid
	}
	if s.exactKeys[name] {
		return conflict, nil
	}
	s.exactKeys[name] = true
	s.exact[name] = server
	return nil, nil
}

// Build freezes the set; afterwards only Match may be called. It currently
// cannot fail; the error result is reserved. Only the building goroutine
// may call it.
func (s *ServerNames) Build() error {
	s.built = true
	return nil
}

// Match returns the server registered for host, nginx's way. host may still
// carry a port and a trailing dot and may contain upper-case letters; it is
// normalised like ngx_http_validate_host (without modifying host). A host
// that nginx would reject with 400 yields ok == false (see ValidateHost for
// telling the two apart). An empty host (HTTP/1.0 without Host) only
// matches the "" name.
//
// If caps is non-nil and a regex name with capture groups matched, capsOut
// holds its capture offsets into the normalised host, i.e. without port
// and trailing dot, lowercased; pass a host normalised by ValidateHost so
// that the offsets index the caller's bytes (caps's storage is
// reused when large enough; one allocation, see package doc); otherwise
// capsOut is caps[:0]. Match allocates nothing when caps is nil or no regex
// with groups is selected, except for hosts containing upper-case letters
// (a copy is lowercased). Safe for concurrent use after Build.
func (s *ServerNames) Match(host []byte, caps []int) (server int, capsOut []int, ok bool) {
	if caps != nil {
		capsOut = caps[:0]
	}
	h, valid := trimHost(host)
	if !valid {
		return -1, capsOut, false
	}
	if hasUpper(h) {
		h = toLower(h)
	}
	if v, found := s.exact[string(h)]; found {
		return v, capsOut, true
	}
	if len(h) == 0 {
		// ngx_hash_find_combined and ngx_http_find_virtual_server stop here.
		return -1, capsOut, false
	}
	if len(s.head) > 0 {
		// Longest suffix first: the suffix after the leftmost dot is the
		// longest, which is what walking ngx_hash_find_wc_head's label tree
		// as deep as possible yields.
		for i := 0; i < len(h); i++ {
			if h[i] == '.' {
				if v, found := s.head[string(h[i+1:])]; found {
					return v, capsOut, true
				}
			}
		}
	}
	if len(s.tail) > 0 {
		// Longest prefix followed by a dot (ngx_hash_find_wc_tail never
		// matches the last label).
		for i := len(h) - 1; i > 0; i-- {
			if h[i] == '.' {
				if v, found := s.tail[string(h[:i])]; found {
					return v, capsOut, true
				}
			}
		}
	}
	for i := range s.regex {
		r := &s.regex[i]
		if r.re.Match(h) {
			if caps != nil && r.groups {
				capsOut = submatch(r.re, h, caps)
			}
			return r.server, capsOut, true
		}
	}
	return -1, capsOut, false
}

// ValidateHost validates and normalises a Host header value in place, like
// ngx_http_validate_host: the port and one trailing dot are removed and
// the name is lowercased (host's bytes are modified). ok is false when
// nginx answers 400 "client sent invalid host header" (empty name, "..",
// NUL, '/', control characters or space). Any goroutine may call it on a
// buffer it owns.
func ValidateHost(host []byte) (h []byte, ok bool) {
	h, ok = trimHost(host)
	if !ok {
		return nil, false
	}
	if len(h) == 0 {
		return nil, false
	}
	for i, c := range h {
		if c >= 'A' && c <= 'Z' {
			h[i] = c + ('a' - 'A')
		}
	}
	return h, true
}

// trimHost is the non-mutating part of ngx_http_validate_host. Unlike
// ValidateHost it accepts an empty input (no Host header at all), which
// ngx_http_process_request_header looks up as "".
func trimHost(host []byte) ([]byte, bool) {
	const (
		usual = iota
		literal
		rest
	)
	dotPos := -2 // nginx uses host->len, which can never equal i-1 for i==0
	hostLen := len(host)
	state := usual
	for i, ch := range host {
		switch ch {
		case '.':
			if dotPos == i-1 {
				return nil, false
			}
			dotPos = i
		case ':':
			if state == usual {
				hostLen = i
				state = rest
			}
		case '[':
			if i == 0 {
				state = literal
			}
		case ']':
			if state == literal {
				hostLen = i + 1
				state = rest
			}
		case 0:
			return nil, false
		default:
			if ch == '/' || ch <= 0x20 || ch == 0x7f {
				return nil, false
			}
		}
	}
	if len(host) == 0 {
		return host, true
	}
	if dotPos == hostLen-1 {
		hostLen--
	}
	if hostLen == 0 {
		return nil, false
	}
	return host[:hostLen], true
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

func toLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

package route

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrBuilt is returned by Add when called after Build.
var ErrBuilt = errors.New("route: Add called after Build")

// CompileRegex compiles an nginx (PCRE) regular expression with Go's regexp
// package, the same way ServerNames and Locations do, so that the config
// compiler can use it for rewrite/if/map and look up named groups
// (SubexpIndex) for "$name" variables. caseless corresponds to nginx's
// NGX_REGEX_CASELESS ("~*"). PCRE syntax that RE2 cannot express is
// rejected with an error that names the pattern. It may be called from any
// goroutine.
func CompileRegex(pattern string, caseless bool) (*regexp.Regexp, error) {
	p := convertPCRE(pattern)
	if caseless {
		p = "(?i)" + p
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("regex %q cannot be compiled: it uses PCRE-only syntax not supported by Go's RE2 regexp "+
			"(lookaround, backreferences, possessive/atomic groups, \\Z, \\K, (?x), ...): %v", pattern, err)
	}
	return re, nil
}

// convertPCRE rewrites the PCRE spelling "(?'name'" of named groups to Go's
// "(?P<name>". "(?<name>" and "(?P<name>" are already accepted by Go 1.22+.
// Escaped parentheses and character classes are skipped so that literal
// text is never rewritten.
func convertPCRE(p string) string {
	if !strings.Contains(p, "(?'") {
		return p
	}
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			b.WriteByte(c)
			b.WriteByte(p[i+1])
			i++
			continue
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			// A ']' right after '[' or '[^' is literal.
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteString("[^")
				i++
			} else {
				b.WriteByte('[')
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		case c == '(' && strings.HasPrefix(p[i:], "(?'"):
			if end := strings.IndexByte(p[i+3:], '\''); end >= 0 {
				b.WriteString("(?P<")
				b.WriteString(p[i+3 : i+3+end])
				b.WriteByte('>')
				i += 3 + end
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Captures returns the bytes of capture group i (0 is the whole match,
// 1..9 are nginx's $1..$9) of src, using caps as returned by a Match call
// on the same src. It returns nil when the group does not exist or did not
// participate in the match (nginx substitutes an empty string for both).
// It never allocates.
func Captures(src []byte, caps []int, i int) []byte {
	if i < 0 || 2*i+1 >= len(caps) {
		return nil
	}
	s, e := caps[2*i], caps[2*i+1]
	if s < 0 || e < s || e > len(src) {
		return nil
	}
	return src[s:e]
}

// submatch runs the (already known to match) regex re on s and copies the
// capture offsets into caps. This is the only allocating step: see the
// package documentation.
func submatch(re *regexp.Regexp, s []byte, caps []int) []int {
	idx := re.FindSubmatchIndex(s)
	return append(caps[:0], idx...)
}

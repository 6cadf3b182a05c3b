// Package route implements nginx's virtual-server selection (server_name)
// and location matching, compiled once per configuration snapshot and
// matched allocation-free at request time.
//
// # Lifecycle and concurrency
//
// A ServerNames or Locations value is built by a single goroutine (the
// config compiler): New*, then Add in configuration order, then Build. After
// Build returns, the value is immutable and Match/Named may be called
// concurrently from any number of goroutines (event loops) without
// synchronisation. Calling Add after Build returns ErrBuilt.
//
// # Regular expressions: PCRE vs Go RE2
//
// nginx compiles "~" server names and "~"/"~*" locations with PCRE; this
// package uses the standard library regexp package (RE2 semantics) through
// CompileRegex. Differences, and how they are handled:
//
//   - PCRE named groups "(?<name>re)" are accepted natively by Go >= 1.22;
//     "(?'name're)" is rewritten to "(?P<name>re)".
//   - Backtracking-only PCRE features (lookahead/lookbehind "(?=", "(?!",
//     "(?<=", "(?<!"; backreferences "\1", "\k<name>"; possessive "a++" and
//     atomic "(?>" groups; "\Z", "\K", "\h", "\R", recursion, conditionals,
//     the "(?x)" flag, ...) do not compile in Go. They are rejected when the
//     configuration is built, with an error naming the pattern, instead of
//     silently matching something else.
//   - "$" without (?m): PCRE also matches before a final "\n"; Go only
//     matches at the very end. nginx matches locations against the decoded
//     URI, so "/x.php%0A" matches "\.php$" in nginx but not here (stricter).
//   - "." and negated classes: nginx does not enable PCRE UTF mode, so "."
//     matches one byte; Go matches one UTF-8 encoded rune (or one byte of
//     invalid UTF-8). Only patterns that count characters of non-ASCII URIs
//     (e.g. "^/.$" against "/é") differ.
//   - "(?i)"/"~*": Go folds case with Unicode simple folding (e.g. "k"
//     matches U+212A KELVIN SIGN); PCRE without UTF folds ASCII only.
//   - "\v" is the vertical-tab character in Go but "vertical whitespace" in
//     PCRE.
//
// # Captures
//
// Go 1.26's regexp has no append-style submatch API: Match([]byte) is
// allocation-free (its matcher state comes from an internal sync.Pool), but
// every *SubmatchIndex method returns a freshly allocated []int. Therefore
// the match path always uses Regexp.Match, and only when the caller asks for
// captures (non-nil caps) and the winning regex has capture groups is
// FindSubmatchIndex run once more on the winner; its result is copied into
// the caller's buffer. Cost: exactly one allocation of 2*(NumSubexp+1) ints
// per request that needs captures; zero otherwise. Like nginx
// (ngx_http_regex_exec only stores captures for regexes with groups), a
// regex without groups leaves no captures.
package route

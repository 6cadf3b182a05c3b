package route

import (
	"errors"
	"strings"
	"testing"
)

func mustLocs(t testing.TB, specs ...Spec) *Locations {
	t.Helper()
	var l Locations
	for _, s := range specs {
		if err := l.Add(s); err != nil {
			t.Fatalf("Add(%+v): %v", s, err)
		}
	}
	if err := l.Build(); err != nil {
		t.Fatal(err)
	}
	return &l
}

type locCase struct {
	uri      string
	want     int // -1: no match
	redirect bool
	caps     []string // expected $0.. captures, nil: none
}

func checkLocs(t *testing.T, l *Locations, cases []locCase) {
	t.Helper()
	for _, c := range cases {
		idx, caps, redir, ok := l.MatchRedirect([]byte(c.uri), make([]int, 0, 20))
		if !ok {
			idx = -1
		}
		if idx != c.want || redir != c.redirect {
			t.Errorf("%q: got %d redirect=%v, want %d redirect=%v", c.uri, idx, redir, c.want, c.redirect)
			continue
		}
		if c.caps != nil {
			var got []string
			for i := 0; 2*i < len(caps); i++ {
				got = append(got, string(Captures([]byte(c.uri), caps, i)))
			}
			if strings.Join(got, "|") != strings.Join(c.caps, "|") {
				t.Errorf("%q: captures %q, want %q", c.uri, got, c.caps)
			}
		} else if len(caps) != 0 {
			t.Errorf("%q: unexpected captures %v", c.uri, caps)
		}
		// Without a caps buffer the same location must be chosen.
		idx2, caps2, ok2 := l.Match([]byte(c.uri), nil)
		if !ok2 {
			idx2 = -1
		}
		if idx2 != idx || caps2 != nil {
			t.Errorf("%q: Match(nil caps) = %d %v", c.uri, idx2, caps2)
		}
	}
}

// The example from https://nginx.org/en/docs/http/ngx_http_core_module.html#location
func TestNginxDocsExample(t *testing.T) {
	l := mustLocs(t,
		Spec{Modifier: "=", Pattern: "/", Index: 'A'},
		Spec{Pattern: "/", Index: 'B'},
		Spec{Pattern: "/documents/", Index: 'C'},
		Spec{Modifier: "^~", Pattern: "/images/", Index: 'D'},
		Spec{Modifier: "~*", Pattern: `\.(gif|jpg|jpeg)$`, Index: 'E'},
	)
	checkLocs(t, l, []locCase{
		{uri: "/", want: 'A'},
		{uri: "/index.html", want: 'B'},
		{uri: "/documents/document.html", want: 'C'},
		{uri: "/images/1.gif", want: 'D'},
		{uri: "/documents/1.jpg", want: 'E', caps: []string{".jpg", "jpg"}},
		{uri: "/DOCUMENTS/1.JPG", want: 'E', caps: []string{".JPG", "JPG"}},
		{uri: "/Documents/x", want: 'B'}, // prefix matching is case-sensitive
		{uri: "/images", want: 'B'},
		{uri: "/images/", want: 'D'},
	})
}

func TestLocationsNoMatch(t *testing.T) {
	l := mustLocs(t, Spec{Pattern: "/a", Index: 1}, Spec{Modifier: "=", Pattern: "/b", Index: 2})
	checkLocs(t, l, []locCase{{uri: "/", want: -1}, {uri: "/b/", want: -1}, {uri: "/b", want: 2}, {uri: "/abc", want: 1}})
	var empty Locations
	empty.Build()
	if _, _, ok := empty.Match([]byte("/"), nil); ok {
		t.Fatal("empty set matched")
	}
}

func TestLongestPrefixManySiblings(t *testing.T) {
	// Enough siblings for a multi-level tree, with names sorting around '/'
	// (ngx_filename_cmp makes '/' the lowest byte).
	names := []string{"/", "/a", "/a-b", "/a/", "/a/b", "/a.b", "/a0", "/ab", "/abc/", "/b", "/b/c/d", "/z", "/a/b/c", "/a/bb", "/a/b-"}
	var specs []Spec
	for i, n := range names {
		specs = append(specs, Spec{Pattern: n, Index: i})
	}
	specs = append(specs, Spec{Modifier: "=", Pattern: "/a/b", Index: 100})
	l := mustLocs(t, specs...)
	longest := func(uri string) int {
		best, bl := -1, -1
		for i, n := range names {
			if strings.HasPrefix(uri, n) && len(n) > bl {
				best, bl = i, len(n)
			}
		}
		return best
	}
	uris := []string{"/", "/a", "/a-", "/a-b", "/a-bc", "/a/", "/a/b/", "/a/b/c", "/a/b/cd", "/a/bb/x", "/a/b-", "/a/b-x",
		"/a.b", "/a.c", "/a0", "/a1", "/ab", "/abc", "/abc/", "/abc/d", "/b", "/b/", "/b/c/d/e", "/c", "/z", "/zz", "x"}
	for _, u := range uris {
		want := longest(u)
		if u == "/a/b" {
			want = 100
		}
		got, _, ok := l.Match([]byte(u), nil)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("%q: got %d, want %d", u, got, want)
		}
	}
}

func TestNestedAndRegexOrder(t *testing.T) {
	l := mustLocs(t,
		Spec{Pattern: "/", Index: 1},
		Spec{Pattern: "/a", Index: 2, Children: []Spec{
			{Modifier: "~", Pattern: `\.php$`, Index: 3},
			{Pattern: "/a/b", Index: 4, Children: []Spec{{Modifier: "~", Pattern: `^/a/b/c`, Index: 5}}},
			{Modifier: "=", Pattern: "/a/x", Index: 6},
		}},
		Spec{Modifier: "~", Pattern: `\.php$`, Index: 7},
		Spec{Modifier: "~", Pattern: `^/a/.*\.php$`, Index: 8},
		Spec{Modifier: "^~", Pattern: "/static/", Index: 9, Children: []Spec{{Modifier: "~", Pattern: `\.css$`, Index: 10}}},
		Spec{Modifier: "~", Pattern: `^/(?<first>[a-z]+)/(\d+)$`, Index: 11},
		Spec{Modifier: "~", Pattern: `^/r/`, Index: 12, Children: []Spec{{Modifier: "~", Pattern: `\.txt$`, Index: 13}}},
		Spec{Modifier: "~", Pattern: `^/r/(.*)`, Index: 14},
	)
	checkLocs(t, l, []locCase{
		{uri: "/a", want: 2},
		{uri: "/a.php", want: 3},         // nested regex of the longest prefix first
		{uri: "/a/q.php", want: 3},       // ... even before an earlier-matching server regex
		{uri: "/a/b/c.php", want: 5},     // deepest nesting first
		{uri: "/a/b/d.php", want: 3},     // then the parent's nested regexes
		{uri: "/a/x", want: 6},           // nested exact
		{uri: "/a/x/y", want: 2},         // exact does not act as prefix
		{uri: "/b.php", want: 7},         // server regex
		{uri: "/static/x.css", want: 10}, // regex nested in ^~ is still checked
		{uri: "/static/x.php", want: 9},  // ^~ stops server-level regexes
		{uri: "/abc/123", want: 11, caps: []string{"/abc/123", "abc", "123"}},
		{uri: "/r/x", want: 12},     // regex without groups: no captures
		{uri: "/r/x.txt", want: 13}, // regex nested in regex
	})
}

func TestCapturesKeptFromOuterRegex(t *testing.T) {
	// nginx keeps the captures of the last regex that has groups.
	l := mustLocs(t, Spec{Modifier: "~", Pattern: `^/(u)/`, Index: 1, Children: []Spec{{Modifier: "~", Pattern: `x$`, Index: 2}}})
	checkLocs(t, l, []locCase{
		{uri: "/u/x", want: 2, caps: []string{"/u/", "u"}},
		{uri: "/u/y", want: 1, caps: []string{"/u/", "u"}},
	})
}

func TestAutoRedirect(t *testing.T) {
	l := mustLocs(t,
		Spec{Pattern: "/", Index: 1},
		Spec{Pattern: "/proxy/", Index: 2, AutoRedirect: true},
		Spec{Modifier: "=", Pattern: "/exact/", Index: 3, AutoRedirect: true},
		Spec{Pattern: "/noslash", Index: 4, AutoRedirect: true},
		Spec{Modifier: "~", Pattern: `^/exact$`, Index: 5},
		Spec{Pattern: "/both", Index: 6},
		Spec{Pattern: "/both/", Index: 7, AutoRedirect: true},
		Spec{Modifier: "~", Pattern: `^/re/`, Index: 8, Children: []Spec{{Pattern: "^/re/x/", Index: 9, AutoRedirect: true}}},
	)
	checkLocs(t, l, []locCase{
		{uri: "/proxy", want: 2, redirect: true},
		{uri: "/proxy/", want: 2},
		{uri: "/exact", want: 3, redirect: true}, // beats the regex
		{uri: "/exact/", want: 3},
		{uri: "/noslash", want: 4},
		{uri: "/both", want: 6}, // an equal prefix location wins
		{uri: "/re/x", want: 8},
	})
}

func TestNamed(t *testing.T) {
	l := mustLocs(t,
		Spec{Modifier: "@", Pattern: "fallback", Index: 1},
		Spec{Pattern: "@other", Index: 2},
		Spec{Modifier: "@", Pattern: "@fallback", Index: 3}, // duplicate: first wins
		Spec{Pattern: "/", Index: 4},
	)
	for _, c := range []struct {
		name string
		want int
		ok   bool
	}{{"@fallback", 1, true}, {"fallback", 1, true}, {"@other", 2, true}, {"@none", 0, false}} {
		got, ok := l.Named(c.name)
		if got != c.want || ok != c.ok {
			t.Errorf("Named(%q) = %d %v", c.name, got, ok)
		}
	}
	checkLocs(t, l, []locCase{{uri: "/@fallback", want: 4}, {uri: "@fallback", want: -1}})
}

func TestLocationErrors(t *testing.T) {
	cases := []struct {
		specs []Spec
		want  string
	}{
		{[]Spec{{Modifier: "=~", Pattern: "/"}}, `invalid location modifier "=~"`},
		{[]Spec{{Pattern: "/a"}, {Pattern: "/a"}}, `duplicate location "/a"`},
		{[]Spec{{Pattern: "/a"}, {Modifier: "^~", Pattern: "/a"}}, `duplicate location "/a"`},
		{[]Spec{{Modifier: "=", Pattern: "/a"}, {Modifier: "=", Pattern: "/a"}}, `duplicate location "/a"`},
		{[]Spec{{Pattern: "/a", Children: []Spec{{Pattern: "/a/b"}, {Pattern: "/a/b"}}}}, `duplicate location "/a/b"`},
		{[]Spec{{Pattern: "/y", Children: []Spec{{Pattern: "/x"}}}}, `location "/x" is outside location "/y"`},
		{[]Spec{{Modifier: "~", Pattern: "^/r", Children: []Spec{{Pattern: "/r/x"}}}}, `location "/r/x" is outside location "^/r"`},
		{[]Spec{{Modifier: "=", Pattern: "/e", Children: []Spec{{Pattern: "/e/x"}}}}, `location "/e/x" cannot be inside the exact location "/e"`},
		{[]Spec{{Modifier: "@", Pattern: "n", Children: []Spec{{Pattern: "/x"}}}}, `location "/x" cannot be inside the named location "@n"`},
		{[]Spec{{Pattern: "/", Children: []Spec{{Modifier: "@", Pattern: "n"}}}}, `named location "@n" can be on the server level only`},
		{[]Spec{{Modifier: "~", Pattern: `^/(?=x)`}}, `PCRE-only syntax`},
		{[]Spec{{Modifier: "~", Pattern: `(a)\1`}}, `PCRE-only syntax`},
		{[]Spec{{Modifier: "~*", Pattern: `a++`}}, `PCRE-only syntax`},
	}
	for _, c := range cases {
		var l Locations
		var err error
		for _, s := range c.specs {
			if err = l.Add(s); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.specs, err, c.want)
		}
	}
	// Accepted by nginx: exact + prefix of the same name, duplicate regexes,
	// regex children of a prefix, a prefix inside a regex whose source
	// text it starts with.
	var l Locations
	for _, s := range []Spec{
		{Modifier: "=", Pattern: "/a", Index: 1}, {Pattern: "/a", Index: 2},
		{Modifier: "~", Pattern: "x", Index: 3}, {Modifier: "~", Pattern: "x", Index: 4},
		{Modifier: "~", Pattern: "/r", Index: 5, Children: []Spec{{Pattern: "/rr", Index: 6}}},
	} {
		if err := l.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	l.Build()
	checkLocs(t, &l, []locCase{{uri: "/a", want: 1}, {uri: "/ab", want: 2}, {uri: "/x", want: 3}, {uri: "/rr", want: 6}, {uri: "/r", want: 5}})
	if err := l.Add(Spec{Pattern: "/late"}); !errors.Is(err, ErrBuilt) {
		t.Fatalf("Add after Build: %v", err)
	}
}

func TestCompileRegex(t *testing.T) {
	for _, c := range []struct{ pat, in, name, want string }{
		{`^/(?<u>[a-z]+)$`, "/abc", "u", "abc"},
		{`^/(?P<u>[a-z]+)$`, "/abc", "u", "abc"},
		{`^/(?'u'[a-z]+)$`, "/abc", "u", "abc"},
		{`^/[(?'](?'u'x)$`, "/(x", "u", "x"},
		{`^/\(?'(?'u'x)$`, "/'x", "u", "x"},
	} {
		re, err := CompileRegex(c.pat, false)
		if err != nil {
			t.Errorf("%q: %v", c.pat, err)
			continue
		}
		m := re.FindSubmatchIndex([]byte(c.in))
		if got := string(Captures([]byte(c.in), m, re.SubexpIndex(c.name))); got != c.want {
			t.Errorf("%q on %q: %q want %q", c.pat, c.in, got, c.want)
		}
	}
	for _, p := range []string{`(?!x)`, `(?<=a)b`, `(?<!a)b`, `(?>a)`, `\Z`, `a\K`, `(?x) a`, `\h`} {
		if _, err := CompileRegex(p, false); err == nil {
			t.Errorf("%q compiled", p)
		}
	}
	if Captures([]byte("x"), []int{0, 1, -1, -1}, 1) != nil || Captures([]byte("x"), []int{0, 1}, 5) != nil {
		t.Error("Captures of missing group")
	}
}

func TestLocationsConcurrent(t *testing.T) {
	l := mustLocs(t, Spec{Pattern: "/", Index: 1}, Spec{Modifier: "~", Pattern: `^/(\w+)\.php$`, Index: 2})
	done := make(chan bool)
	for g := 0; g < 8; g++ {
		go func() {
			buf := make([]int, 0, 8)
			for i := 0; i < 500; i++ {
				idx, caps, _ := l.Match([]byte("/abc.php"), buf)
				if idx != 2 || string(Captures([]byte("/abc.php"), caps, 1)) != "abc" {
					t.Error("bad concurrent match")
				}
				if idx, _, _ := l.Match([]byte("/x"), nil); idx != 1 {
					t.Error("bad concurrent match")
				}
			}
			done <- true
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
}

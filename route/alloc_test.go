package route

import (
	"testing"
)

func benchLocs(t testing.TB) *Locations {
	specs := []Spec{
		{Modifier: "=", Pattern: "/", Index: 1},
		{Pattern: "/", Index: 2},
		{Pattern: "/documents/", Index: 3},
		{Modifier: "^~", Pattern: "/images/", Index: 4},
		{Modifier: "~*", Pattern: `\.(gif|jpg|jpeg)$`, Index: 5},
		{Pattern: "/api/v1/", Index: 6, Children: []Spec{{Pattern: "/api/v1/users/", Index: 7}}},
		{Modifier: "~", Pattern: `^/u/(\d+)/(?<name>[a-z]+)$`, Index: 8},
	}
	// Many more prefixes, as in a large config.
	for i := 0; i < 200; i++ {
		specs = append(specs, Spec{Pattern: "/p" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "/", Index: 1000 + i})
	}
	return mustLocs(t, specs...)
}

func benchNames(t testing.TB) *ServerNames {
	names := [][2]any{{"example.com", 1}, {"*.example.com", 2}, {"www.example.*", 3},
		{`~^(?<user>[a-z]+)\.example\.net$`, 4}, {`~^[a-z]+\.regex\.test$`, 5}}
	for i := 0; i < 100; i++ {
		names = append(names, [2]any{"host" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".test", 100 + i})
	}
	return mustNames(t, names...)
}

func TestZeroAllocs(t *testing.T) {
	l := benchLocs(t)
	s := benchNames(t)
	// No regex at all: nothing pooled is involved, so 0 even under -race.
	pl := mustLocs(t, Spec{Pattern: "/", Index: 1}, Spec{Pattern: "/api/", Index: 3, Children: []Spec{{Pattern: "/api/v1/", Index: 2}}})
	caps := make([]int, 0, 32)
	var (
		b0  = []byte("/")
		b1  = []byte("/api/v1/users/42")
		b2  = []byte("/pzg/x")
		b3  = []byte("/images/a.gif")
		b4  = []byte("/x/a.JPG")
		b5  = []byte("/u/1/bob")
		b6  = []byte("example.com")
		b7  = []byte("hostzc.test:8080")
		b8  = []byte("a.b.example.com")
		b9  = []byte("www.example.org")
		b10 = []byte("x.regex.test")
		b11 = []byte("joe.example.net")
		b12 = []byte("/u/1/bob")
	)
	for _, c := range []struct {
		name  string
		f     func() bool
		regex bool
	}{
		{"exact", func() bool { i, _, _ := l.Match(b0, caps); return i == 1 }, false},
		{"prefix", func() bool { i, _, _ := l.Match(b1, caps); return i == 7 }, true}, // server regexes are tried too
		{"prefix-many", func() bool { i, _, _ := l.Match(b2, nil); return i == 1000+6*26+25 }, true},
		{"prefix-only-config", func() bool { i, _, _ := pl.Match(b1, caps); return i == 2 }, false},
		{"noregex", func() bool { i, _, _ := l.Match(b3, caps); return i == 4 }, false},
		{"regex-nocaps", func() bool { i, _, _ := l.Match(b4, nil); return i == 5 }, true},
		{"regex-nocaps-u", func() bool { i, _, _ := l.Match(b5, nil); return i == 8 }, true},
		{"host-exact", func() bool { i, _, _ := s.Match(b6, caps); return i == 1 }, false},
		{"host-port", func() bool { i, _, _ := s.Match(b7, caps); return i == 100+77 }, false},
		{"host-head", func() bool { i, _, _ := s.Match(b8, caps); return i == 2 }, false},
		{"host-tail", func() bool { i, _, _ := s.Match(b9, caps); return i == 3 }, false},
		{"host-regex-nogroups", func() bool { i, _, _ := s.Match(b10, caps); return i == 5 }, true},
		{"host-regex-nocaps", func() bool { i, _, _ := s.Match(b11, nil); return i == 4 }, true},
	} {
		if !c.f() {
			t.Fatalf("%s: wrong result", c.name)
		}
		if c.regex && raceEnabled {
			continue // see race_test.go
		}
		if n := testing.AllocsPerRun(200, func() { c.f() }); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", c.name, n)
		}
	}
	// With captures: exactly the one FindSubmatchIndex result.
	if !raceEnabled {
		n := testing.AllocsPerRun(200, func() { l.Match(b12, caps) })
		if n != 1 {
			t.Errorf("regex with captures: %v allocs/op, want 1", n)
		}
	}
}

func BenchmarkLocations(b *testing.B) {
	l := benchLocs(b)
	caps := make([]int, 0, 32)
	for _, c := range []struct {
		name string
		uri  string
		caps []int
	}{
		{"exact", "/", nil},
		{"prefix", "/documents/a/b/c.html", nil},
		{"prefix-nested", "/api/v1/users/42", nil},
		{"prefix-200", "/pmh/index.html", nil},
		{"noregex", "/images/a.gif", nil},
		{"regex", "/a/b/c.JPEG", nil},
		{"regex-captures", "/u/42/bob", caps},
	} {
		uri := []byte(c.uri)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.Match(uri, c.caps)
			}
		})
	}
}

func BenchmarkServerNames(b *testing.B) {
	s := benchNames(b)
	caps := make([]int, 0, 32)
	for _, c := range []struct {
		name string
		host string
		caps []int
	}{
		{"exact", "example.com", nil},
		{"exact-port", "hostzc.test:8080", nil},
		{"head-wildcard", "a.b.example.com", nil},
		{"tail-wildcard", "www.example.co.uk", nil},
		{"regex", "x.regex.test", nil},
		{"regex-captures", "joe.example.net", caps},
		{"miss", "nothing.here.test", nil},
	} {
		host := []byte(c.host)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Match(host, c.caps)
			}
		})
	}
}

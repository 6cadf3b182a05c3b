package route

import (
	"errors"
	"strings"
	"testing"
)

func mustNames(t testing.TB, names ...[2]any) *ServerNames {
	t.Helper()
	s := NewServerNames()
	for _, n := range names {
		if _, err := s.Add(n[0].(string), n[1].(int)); err != nil {
			t.Fatalf("Add(%q): %v", n[0], err)
		}
	}
	s.Build()
	return s
}

func TestServerNamesPriority(t *testing.T) {
	s := mustNames(t,
		[2]any{"_", 1},
		[2]any{"Example.com", 2}, [2]any{"www.example.com", 2},
		[2]any{"*.example.com", 3},
		[2]any{".example.org", 4},
		[2]any{"www.example.*", 5},
		[2]any{`~^(?<user>[a-z]+)\.example\.net$`, 6},
		[2]any{`~^www\.`, 7},
		[2]any{"", 8}, [2]any{"*.deep.example.com", 8}, [2]any{"mail.*", 8}, [2]any{"mail.example.*", 9},
		[2]any{`~^UP\.test$`, 10}, // upper case in regex: caseless, like nginx
	)
	for _, c := range []struct {
		host string
		want int
		caps string
	}{
		{"example.com", 2, ""}, {"EXAMPLE.COM", 2, ""}, {"example.com:8080", 2, ""}, {"example.com.", 2, ""},
		{"www.example.com", 2, ""}, {"a.example.com", 3, ""}, {"a.b.example.com", 3, ""},
		{"x.deep.example.com", 8, ""}, {"deep.example.com", 3, ""},
		{"example.org", 4, ""}, {"x.example.org", 4, ""}, {"xexample.org", -1, ""},
		{"www.example.de", 5, ""}, {"www.example.co.uk", 5, ""}, {"www.example", 7, ""},
		{"mail.example.x", 9, ""}, {"mail.x", 8, ""}, {"mail", -1, ""},
		{"joe.example.net", 6, "joe"}, {"www.other.net", 7, ""}, {"up.test", 10, ""},
		{"", 8, ""}, {"_", 1, ""}, {"unknown.test", -1, ""}, {"[::1]:80", -1, ""},
		{"a..b", -1, ""}, {"a/b", -1, ""}, {":80", -1, ""},
	} {
		got, caps, ok := s.Match([]byte(c.host), make([]int, 0, 8))
		if !ok {
			got = -1
		}
		if got != c.want {
			t.Errorf("%q: got %d, want %d", c.host, got, c.want)
		}
		if c.caps != "" && string(Captures([]byte(c.host), caps, 1)) != c.caps {
			t.Errorf("%q: caps %v", c.host, caps)
		}
	}
}

func TestServerNamesConflicts(t *testing.T) {
	s := NewServerNames()
	steps := []struct {
		name   string
		server int
		want   string // "" ok, "warn:..." warning, else fatal substring
	}{
		{"a.test", 1, ""},
		{"A.TEST", 2, `warn:conflicting server name "a.test", ignored`},
		{"*.b.test", 1, ""},
		{".b.test", 2, `warn:conflicting server name ".b.test", ignored`},
		{"b.test", 3, `warn:conflicting server name "b.test", ignored`}, // keys_hash got it from ".b.test"
		{"c.test", 1, ""},
		{".c.test", 2, `warn:conflicting server name ".c.test", ignored`},
		{"w.*", 1, ""}, {"w.*", 2, `warn:conflicting`},
		{"x/y", 4, `warn:server name "x/y" has suspicious symbols`},
		{"*", 1, `server name "*" is invalid`},
		{"*x.test", 1, `server name "*x.test" is invalid`},
		{".", 1, `server name "." is invalid`},
		{"a.*.test", 1, `invalid server name or wildcard "a.*.test"`},
		{"a..test", 1, `invalid server name or wildcard "a..test"`},
		{"*.a.*", 1, `invalid server name or wildcard "*.a.*"`},
		{`~^(?=a)`, 1, "PCRE-only syntax"},
		{"", 1, ""}, {"", 2, `warn:conflicting server name ""`},
	}
	for _, st := range steps {
		w, err := s.Add(st.name, st.server)
		switch {
		case st.want == "":
			if err != nil || w != nil {
				t.Errorf("%q: %v %v", st.name, w, err)
			}
		case strings.HasPrefix(st.want, "warn:"):
			if err != nil || w == nil || !strings.Contains(w.Msg, st.want[5:]) {
				t.Errorf("%q: %v %v, want warning %q", st.name, w, err, st.want)
			}
		default:
			if err == nil || w != nil || !strings.Contains(err.Error(), st.want) {
				t.Errorf("%q: %v %v, want error %q", st.name, w, err, st.want)
			}
		}
	}
	s.Build()
	for host, want := range map[string]int{"a.test": 1, "x.b.test": 1, "b.test": -1, "c.test": 1, "x.c.test": -1, "w.x": 1, "": 1} {
		got, _, ok := s.Match([]byte(host), nil)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("%q: got %d want %d", host, got, want)
		}
	}
	if _, err := s.Add("late", 1); !errors.Is(err, ErrBuilt) {
		t.Errorf("Add after Build: %v", err)
	}
}

func TestValidateHost(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM:80": "example.com", "a.b.": "a.b", "[::1]:8080": "[::1]", "x": "x", "[::1]": "[::1]",
		".a.b": ".a.b", "": "!", "a..b": "!", "a b": "!", "a/b": "!", "a\x00": "!", ":80": "!", ".": "!", "a.b..": "!",
	} {
		b := []byte(in)
		got, ok := ValidateHost(b)
		if !ok {
			if want != "!" {
				t.Errorf("%q rejected", in)
			}
			continue
		}
		if string(got) != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	real, err := os.ReadFile("testdata/reverse-proxy.conf")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(real),
		"events {}\nhttp { types { text/html html; } }\n",
		`a "unterminated`, `a 'unterminated`, "a \\", "a \"x\"y;", "}", "{", ";",
		strings.Repeat("a{", 10000), strings.Repeat("}", 10000),
		"a\x00b \x00;", "\x00", "a " + strings.Repeat("x", 70000) + ";",
		"#" + strings.Repeat("c", 5000), "a ${x}{{{;", "a b\\\n;", "a \"\\", "if ($a = \"x\") { }",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParse: Parse never panics, nesting is bounded, every error is an
// *Error with a line inside the input, and every directive has a name.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		dirs, err := Parse("f.conf", src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not *Error", err)
			}
			if e.Line < 1 || e.Line > strings.Count(string(src), "\n")+1 || e.File != "f.conf" {
				t.Fatalf("error location out of input: %v", e)
			}
		}
		var walk func([]*Directive, int)
		walk = func(ds []*Directive, depth int) {
			if depth > MaxDepth {
				t.Fatalf("nesting depth %d exceeds MaxDepth", depth)
			}
			for _, d := range ds {
				if d.Line < 1 {
					t.Fatalf("directive %q has line %d", d.Name, d.Line)
				}
				walk(d.Block, depth+1)
			}
		}
		walk(dirs, 0)
		// Validate must not panic on any tree either.
		_, _ = Validate(&Config{Main: dirs})
	})
}

// FuzzLex: the tokenizer alone, also in -g (parameter) mode; no token is
// ever longer than nginx's window for files.
func FuzzLex(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, param := range []bool{false, true} {
			lx := newLexer("f.conf", src, param)
			for i := 0; ; i++ {
				if i > len(src)+1 {
					t.Fatalf("lexer does not progress")
				}
				rc, err := lx.readToken()
				if err != nil || rc == tokFileDone {
					break
				}
				for _, a := range lx.args {
					if !param && len(a) >= confBuffer {
						t.Fatalf("token of %d bytes accepted", len(a))
					}
				}
			}
		}
	})
}

// The realistic seed parses and every directive in it is one edgeproxy
// implements or accepts (the mime.types include is not expanded by Parse).
func TestParseSeedConfig(t *testing.T) {
	src, err := os.ReadFile("testdata/reverse-proxy.conf")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := Parse("rp.conf", src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = Validate(&Config{Main: dirs}); err != nil {
		t.Fatalf("Validate = %v", err)
	}
}

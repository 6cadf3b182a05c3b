package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// d is a compact directive constructor for expected trees (File "t.conf").
func d(line int, name string, args ...string) *Directive {
	var a []string
	if len(args) > 0 {
		a = args
	}
	return &Directive{Name: name, Args: a, File: "t.conf", Line: line}
}

func blk(dir *Directive, children ...*Directive) *Directive {
	dir.Block = append([]*Directive{}, children...)
	return dir
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []*Directive
	}{
		{"simple", "worker_processes 2;\n", []*Directive{d(1, "worker_processes", "2")}},
		{"empty", "", []*Directive{}},
		{"only comments", "# a\n  # b ; { }\n", []*Directive{}},
		{"whitespace kinds", "a\tb\r\nc ;", []*Directive{d(2, "a", "b", "c")}},
		{"line is terminator line", "listen\n  80\n;\n", []*Directive{d(3, "listen", "80")}},
		{"double quotes keep spaces and ;{}", `add_header X "a b;{}#";`, []*Directive{d(1, "add_header", "X", "a b;{}#")}},
		{"single quotes", `return 200 'it''s';`, nil}, // 'it''s' is an error, see errors test
		{"empty quoted arg", `server_name "";`, []*Directive{d(1, "server_name", "")}},
		{"escapes in double quotes", `a "x\"y\\z\tq\nr\rs";`, []*Directive{d(1, "a", "x\"y\\z\tq\nr\rs")}},
		{"escapes in single quotes", `a 'x\'y';`, []*Directive{d(1, "a", "x'y")}},
		{"other backslash kept (regex)", `location ~ ^/a\d+\.php$ {}`, []*Directive{blk(d(1, "location", "~", `^/a\d+\.php$`))}},
		// nginx only unescapes \" \' \\ \t \r \n; "\ " and "\;" keep the backslash
		// but do not end the word.
		{"backslash outside quotes", `a b\ c\;d\"e;`, []*Directive{d(1, "a", `b\ c\;d"e`)}},
		{"hash inside word is literal", "server_name a#b;\n", []*Directive{d(1, "server_name", "a#b")}},
		{"hash after space is comment", "a b #c;\n;", []*Directive{d(2, "a", "b")}},
		{"comment in quotes is text", `a "#x";`, []*Directive{d(1, "a", "#x")}},
		{"brace variable", `return 200 ${host}x;`, []*Directive{d(1, "return", "200", "${host}x")}},
		{"brace variable in quotes", `a "${x}{";`, []*Directive{d(1, "a", "${x}{")}},
		{"variables kept", `proxy_set_header Host $host;`, []*Directive{d(1, "proxy_set_header", "Host", "$host")}},
		{"closing brace inside word", `a b};`, []*Directive{d(1, "a", "b}")}},
		{"quote then paren", `if ($a = "x") { }`, []*Directive{blk(d(1, "if", "($a", "=", "x", ")"))}},
		{"quote then ;", `a "b";`, []*Directive{d(1, "a", "b")}},
		{"quote then {", `location "/x"{}`, []*Directive{blk(d(1, "location", "/x"))}},
		{"word then { without space", "location /x{}", []*Directive{blk(d(1, "location", "/x"))}},
		{"nested blocks", "http {\n server {\n  location / {\n   root /x;\n  }\n }\n}\n",
			[]*Directive{blk(d(1, "http"), blk(d(2, "server"), blk(d(3, "location", "/"), d(4, "root", "/x"))))}},
		{"empty block is non-nil", "events {}", []*Directive{blk(d(1, "events"))}},
		{"semicolon terminates in block", "http{a;b;}", []*Directive{blk(d(1, "http"), d(1, "a"), d(1, "b"))}},
		{"quoted name", `"worker_processes" 1;`, []*Directive{d(1, "worker_processes", "1")}},
		{"NUL byte kept", "a b\x00c;", []*Directive{d(1, "a", "b\x00c")}},
		{"types free form", "types { text/html html htm; }", []*Directive{blk(d(1, "types"), d(1, "text/html", "html", "htm"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("t.conf", []byte(tt.src))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Parse(%q) succeeded, want error", tt.src)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) =\n%s\nwant\n%s", tt.src, dumpTree(got), dumpTree(tt.want))
			}
		})
	}
}

func dumpTree(ds []*Directive) string {
	var b strings.Builder
	var walk func([]*Directive, string)
	walk = func(ds []*Directive, ind string) {
		for _, x := range ds {
			b.WriteString(ind + x.File + ":" + itoa(x.Line) + " " + x.Name)
			for _, a := range x.Args {
				b.WriteString(" «" + a + "»")
			}
			if x.Block != nil {
				b.WriteString(" {\n")
				walk(x.Block, ind+"  ")
				b.WriteString(ind + "}")
			}
			b.WriteString("\n")
		}
	}
	walk(ds, "")
	return b.String()
}

// TestParseErrors checks syntax errors that need no nginx to verify (the
// same messages are compared with real nginx in nginx_test.go).
func TestParseErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"}", `unexpected "}" in t.conf:1`},
		{"http {\n", `unexpected end of file, expecting "}" in t.conf:2`},
		{"a b", `unexpected end of file, expecting ";" or "}" in t.conf:1`},
		{"a \"b;", `unexpected end of file, expecting ";" or "}" in t.conf:1`},
		{";", `unexpected ";" in t.conf:1`},
		{"\n{", `unexpected "{" in t.conf:2`},
		{"a \"b\"c;", `unexpected "c" in t.conf:1`},
		{"a 'b''c';", `unexpected "'" in t.conf:1`},
		{"a b }", `unexpected "}" in t.conf:1`},
		{"a " + strings.Repeat("x", 5000) + ";", `too long parameter "xxxxxxxxxx..." started in t.conf:1`},
		{"a \"" + strings.Repeat("x", 5000) + "\";", `too long parameter, probably missing terminating """ character in t.conf:1`},
		{"a '" + strings.Repeat("x", 5000) + "';", `too long parameter, probably missing terminating "'" character in t.conf:1`},
		{"#" + strings.Repeat("x", 5000) + "\na;", `too long parameter "#xxxxxxxxx..." started in t.conf:1`},
		{strings.Repeat("a{", MaxDepth+1), `too deep nesting of blocks, more than 100 levels in t.conf:1`},
	}
	for _, tt := range tests {
		_, err := Parse("t.conf", []byte(tt.src))
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%.40q) error = %v, want *Error %q", tt.src, err, tt.want)
			continue
		}
		if e.Error() != tt.want {
			t.Errorf("Parse(%.40q) error = %q, want %q", tt.src, e.Error(), tt.want)
		}
	}
}

// A token of exactly what fits nginx's 4096-byte window is fine.
func TestParseLongTokenBoundary(t *testing.T) {
	tok := strings.Repeat("x", confBuffer-1)
	got, err := Parse("t.conf", []byte("a "+tok+";\n"))
	if err != nil {
		t.Fatalf("4095-byte token rejected: %v", err)
	}
	if got[0].Args[0] != tok {
		t.Fatalf("token mangled")
	}
}

// Parse returns what was complete before an error, so Load can report
// nginx's first error.
func TestParsePartialTree(t *testing.T) {
	got, err := Parse("t.conf", []byte("a 1;\nhttp {\n b 2;\n c \"x\"y;\n"))
	if err == nil {
		t.Fatal("want error")
	}
	want := []*Directive{d(1, "a", "1"), blk(d(2, "http"), d(3, "b", "2"))}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("partial tree =\n%s\nwant\n%s", dumpTree(got), dumpTree(want))
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{File: "/e/n.conf", Line: 3, Msg: "m"}, "m in /e/n.conf:3"},
		{Error{Msg: "m", CommandLine: true}, "m in command line"},
		{Error{Msg: "m"}, "m"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

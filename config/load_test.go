package config

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestLoadTree checks what the compiler sees: includes replaced in place,
// -g directives first, file names as nginx prints them.
func TestLoadTree(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"conf/nginx.conf":   "events {}\nhttp {\n include sites/*.conf;\n server_tokens off;\n}\n",
		"conf/sites/b.conf": "server { listen 2; }\n",
		"conf/sites/a.conf": "server { listen 1; }\n",
	})
	cfg, err := Load("conf/nginx.conf", Options{Prefix: dir, Globals: "daemon off;"})
	if err != nil {
		t.Fatal(err)
	}
	main := dir + "/conf/nginx.conf"
	a, b := dir+"/conf/sites/a.conf", dir+"/conf/sites/b.conf"
	want := []*Directive{
		{Name: "daemon", Args: []string{"off"}},
		{Name: "events", Block: []*Directive{}, File: main, Line: 1},
		{Name: "http", File: main, Line: 2, Block: []*Directive{
			{Name: "server", File: a, Line: 1, Block: []*Directive{{Name: "listen", Args: []string{"1"}, File: a, Line: 1}}},
			{Name: "server", File: b, Line: 1, Block: []*Directive{{Name: "listen", Args: []string{"2"}, File: b, Line: 1}}},
			{Name: "server_tokens", Args: []string{"off"}, File: main, Line: 4},
		}},
	}
	if !reflect.DeepEqual(cfg.Main, want) {
		t.Errorf("Main =\n%s\nwant\n%s", dumpTree(cfg.Main), dumpTree(want))
	}
	if wantFiles := []string{main, a, b}; !reflect.DeepEqual(cfg.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", cfg.Files, wantFiles)
	}
}

func TestLoadPrefixWithoutSlash(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"nginx.conf": "include e.conf;\n", "e.conf": "events {}\n"})
	cfg, err := Load("nginx.conf", Options{Prefix: dir})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Files[1] != dir+"/e.conf" {
		t.Errorf("include resolved to %q, want %q", cfg.Files[1], dir+"/e.conf")
	}
}

func TestLoadRecursiveInclude(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"nginx.conf": "events {}\ninclude loop.conf;\n", "loop.conf": "\ninclude loop.conf;\n"})
	_, err := Load(dir+"/nginx.conf", Options{})
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Msg, "include nesting is deeper than 32 levels") || e.Line != 2 {
		t.Fatalf("recursive include: got %v", err)
	}
}

func TestLoadNotices(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"nginx.conf": "user www-data;\nevents { use epoll; }\nhttp {\n sendfile on;\n tcp_nopush on;\n}\n"})
	cfg, err := Load(dir+"/nginx.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range cfg.Notices {
		got = append(got, n.Directive+"@"+itoa(n.Line))
	}
	if want := []string{"user@1", "use@2", "sendfile@4", "tcp_nopush@5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("notices = %v, want %v", got, want)
	}
	if s := cfg.Notices[2].String(); s != `"sendfile" directive has no effect in edgeproxy (it only tunes nginx internals) in `+dir+`/nginx.conf:4` {
		t.Errorf("notice text = %q", s)
	}
}

// Validate works on trees that did not come from Load (e.g. Parse output).
func TestValidateParsedTree(t *testing.T) {
	dirs, err := Parse("x.conf", []byte("events {}\nhttp { server { location / { fastcgi_pass b:9000; } } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Validate(&Config{Main: dirs})
	if err == nil || err.Error() != `"fastcgi_pass" directive is not supported by edgeproxy in x.conf:2` {
		t.Fatalf("Validate = %v", err)
	}
	if _, err := Validate(&Config{}); err == nil || err.Error() != `no "events" section in configuration` {
		t.Fatalf("Validate(empty) = %v", err)
	}
}

func TestDumpReadsDiskForHandMadeConfig(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.conf": "x;"})
	var b bytes.Buffer
	if err := Dump(&b, &Config{Files: []string{dir + "/a.conf"}}); err != nil {
		t.Fatal(err)
	}
	if want := "# configuration file " + dir + "/a.conf:\nx;\n"; b.String() != want {
		t.Errorf("Dump = %q, want %q", b.String(), want)
	}
}

func TestLookup(t *testing.T) {
	s, ok := Lookup("sendfile")
	if !ok || s.Support != Accepted || s.Arity&Flag == 0 || s.Contexts&CtxLocationIf == 0 || !s.Unique {
		t.Errorf("Lookup(sendfile) = %+v, %v", s, ok)
	}
	if s, _ := LookupIn("server", CtxUpstream); s == nil || s.Arity&Block != 0 {
		t.Errorf("server in upstream = %+v", s)
	}
	if s, _ := LookupIn("server", CtxHTTP); s == nil || s.Arity&Block == 0 || s.Body != CtxServer {
		t.Errorf("server in http = %+v", s)
	}
	if _, ok := Lookup("no_such_directive"); ok {
		t.Error("Lookup(no_such_directive) found")
	}
	if s, _ := Lookup("types"); s.Body != CtxFreeform {
		t.Errorf("types body = %v", s.Body)
	}
}

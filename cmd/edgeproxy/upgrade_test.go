package main

import (
	"reflect"
	"strings"
	"testing"

	"edgeproxy/snapshot"
)

func TestParseInherit(t *testing.T) {
	got, bad := parseInherit("tcp 127.0.0.1:80=3;tcp6 [::]:443=4;unix /run/x.sock=5;;junk;tcp 1.2.3.4:1=2;tcp a:1=x;")
	want := map[string]int{"tcp 127.0.0.1:80": 3, "tcp6 [::]:443": 4, "unix /run/x.sock": 5}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
	if strings.Join(bad, "|") != "junk|tcp 1.2.3.4:1=2|tcp a:1=x" {
		t.Errorf("bad entries: %q", bad)
	}
}

func FuzzParseInherit(f *testing.F) {
	f.Add("tcp 127.0.0.1:80=3;tcp6 [::]:443=4;")
	f.Add("=3;a==4;;=;")
	f.Fuzz(func(t *testing.T, v string) {
		out, _ := parseInherit(v)
		for k, fd := range out {
			if k == "" || fd < 3 || strings.Contains(k, ";") {
				t.Fatalf("bad entry %q=%d from %q", k, fd, v)
			}
		}
	})
}

// A reload that keeps a socket but changes its listen options says so.
func TestKeptOptionChanges(t *testing.T) {
	a := &snapshot.Snapshot{Listeners: []*snapshot.Listener{{Network: "tcp", Addr: "127.0.0.1:80", Backlog: 511}}}
	b := &snapshot.Snapshot{Listeners: []*snapshot.Listener{{Network: "tcp", Addr: "127.0.0.1:80", Backlog: 1024, File: "x.conf", Line: 3}}}
	if w := keptOptionChanges(a, b); len(w) != 1 || !strings.Contains(w[0], "127.0.0.1:80") || !strings.Contains(w[0], "x.conf:3") {
		t.Fatalf("warnings %q", w)
	}
	if w := keptOptionChanges(a, a); len(w) != 0 {
		t.Fatalf("no change, warnings %q", w)
	}
}

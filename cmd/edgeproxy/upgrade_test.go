package main

import (
	"reflect"
	"strings"
	"testing"
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

package snapshot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeproxy/config"
)

func compileText(t *testing.T, text string) (*Snapshot, []Notice, error) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p, config.Options{Prefix: dir})
	if err != nil {
		return nil, nil, err
	}
	if _, err := config.Validate(cfg); err != nil {
		return nil, nil, err
	}
	return Compile(cfg, dir)
}

// Errors a user would see from `edgeproxy -t`, with file:line.
func TestCompileErrors(t *testing.T) {
	cases := []struct{ conf, want string }{
		{`events {} http { server { listen 1.2.3.4.5:80; } }`, "host not found"},
		{`events {} http { server { listen 80 bogus; } }`, `invalid parameter "bogus"`},
		{`events {} http { server { listen 127.0.0.1:99999; } }`, "invalid port"},
		{`events {} http { server { location / { limit_req zone=nope; } } }`, `zero size shared memory zone "nope"`},
		{`events {} http { limit_req_zone $binary_remote_addr zone=z:10m rate=abc; }`, "invalid rate"},
		{`events {} http { limit_req_zone $binary_remote_addr zone=z:1k rate=1r/s; }`, "too small"},
		{`events {} http { server { location / { return 200 "$nosuchvar"; } } }`, `unknown "nosuchvar" variable`},
		{`events {} http { server { location / { try_files $uri @missing; } } }`, `could not find named location "@missing"`},
		{`events {} http { server { error_page 200 /x; } }`, "must be between 300 and 599"},
		{`events {} http { server { location / { return abc; } } }`, "invalid return code"},
		{`events {} http { server { location / { autoindex on; } } }`, "autoindex"},
		{`events {} http { server { merge_slashes off; } }`, "merge_slashes"},
		{`events {} http { access_log syslog:server=127.0.0.1; }`, "syslog"},
		{`events {} http { access_log /nonexistent-dir/x.log; }`, "open()"},
		{`events {} http { access_log /tmp/x.log nosuchformat; }`, "unknown log format"},
		{`events {} http { server { listen 127.0.0.1:8080 default_server; } server { listen 127.0.0.1:8080 default_server; } }`, "duplicate default server"},
	}
	for _, tc := range cases {
		_, _, err := compileText(t, tc.conf)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\n  got %v, want an error containing %q", tc.conf, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), "nginx.conf:1") {
			t.Errorf("%s: error %q lacks file:line", tc.conf, err)
		}
	}
}

func TestCompileInheritance(t *testing.T) {
	snap, notices, err := compileText(t, `
worker_processes 3;
events { worker_connections 77; }
http {
    add_header X-A a;
    keepalive_timeout 5s 4s;
    sendfile on;
    server {
        listen 127.0.0.1:8081;
        listen [::1]:8082 default_server;
        server_name a.test *.b.test;
        location / { }
        location /own { add_header X-B b; }
        location /nested { location /nested/inner { } }
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Loops != 3 || snap.WorkerConnections != 77 {
		t.Fatalf("loops %d conns %d", snap.Loops, snap.WorkerConnections)
	}
	if len(snap.Listeners) != 2 {
		t.Fatalf("listeners: %d", len(snap.Listeners))
	}
	srv := snap.Servers[0]
	byPattern := map[string]*Location{}
	for _, l := range srv.Locs {
		byPattern[l.Pattern] = l
	}
	if h := byPattern["/"].AddHeaders; len(h) != 1 || h[0].Name != "X-A" {
		t.Errorf("/ inherits the http add_header: %+v", h)
	}
	if h := byPattern["/own"].AddHeaders; len(h) != 1 || h[0].Name != "X-B" {
		t.Errorf("/own replaces inherited add_header (nginx rule): %+v", h)
	}
	if l := byPattern["/nested/inner"]; l == nil || l.KeepaliveTimeout.Seconds() != 5 || l.KeepaliveHeader.Seconds() != 4 {
		t.Errorf("nested location settings: %+v", l)
	}
	found := false
	for _, n := range notices {
		if strings.Contains(n.Msg, "daemon") || strings.Contains(n.Msg, "sendfile") {
			found = true
		}
	}
	_ = found // notices for accepted directives come from config.Validate
}

func TestTemplates(t *testing.T) {
	tp, err := CompileTemplate("a$host${uri}b$http_user_agent$arg_x$1")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []VarID
	for _, s := range tp.Segs {
		kinds = append(kinds, s.Var)
	}
	want := []VarID{VarNone, VarHost, VarURI, VarNone, VarHTTP, VarArg, VarCapture}
	if len(kinds) != len(want) {
		t.Fatalf("segments %v", kinds)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("segments %v, want %v", kinds, want)
		}
	}
	if tp.Segs[4].Arg != "user-agent" {
		t.Errorf("$http_user_agent header name %q", tp.Segs[4].Arg)
	}
	if _, err := CompileTemplate("${unterminated"); err == nil {
		t.Error("unterminated ${ accepted")
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const logConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    log_format combined_py '$remote_addr - $remote_user [$time_local] "$request" '
                           '$status $body_bytes_sent "$http_referer" "$http_user_agent" '
                           'rt=$request_time uri=$uri args=$args host=$host';
    log_format jsonfmt escape=json '{"uri":"$request_uri","ua":"$http_user_agent","status":$status}';
    access_log {{.Tmp}}/logs/combined.log;
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        access_log {{.Tmp}}/logs/py.log combined_py;
        access_log {{.Tmp}}/logs/json.log jsonfmt;
        location /quiet { access_log off; return 200 "quiet\n"; }
        location /plain { access_log {{.Tmp}}/logs/combined.log; return 200 "plain\n"; }
        location /ok { return 200 "ok\n"; }
        location /cond { access_log {{.Tmp}}/logs/cond.log combined if=$arg_log; return 204; }
    }
}
`

var (
	timeField   = regexp.MustCompile(`\[[^\]]+\]`)
	rtField     = regexp.MustCompile(`rt=[0-9.]+`)
	builtinSize = regexp.MustCompile(`" (40[0-9]|41[0-9]|50[0-9]) [0-9]+ `)
)

func readLog(t *testing.T, s *server, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "logs", name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		l = timeField.ReplaceAllString(l, "[TIME]")
		l = rtField.ReplaceAllString(l, "rt=T")
		// Built-in error pages name the product: their size differs by
		// the length of "edgeproxy/x.y.z" vs "nginx/1.22.1".
		l = builtinSize.ReplaceAllString(l, `" $1 SIZE `)
		out = append(out, l)
	}
	return out
}

// Access-log lines for the same requests are the same in nginx and
// edgeproxy (times masked), for the predefined combined format, a custom
// format, escape=json, access_log off, per-location logs and if=.
func TestAccessLogDifferential(t *testing.T) {
	docs := t.TempDir()
	if err := os.WriteFile(filepath.Join(docs, "file.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ngx, edge := pair(t, logConf, docs)
	reqs := []string{
		get("/ok?a=1", "User-Agent: test \"agent\"\r\nReferer: http://ref.example/\r\n"),
		get("/file.txt", "User-Agent: curl/8\r\n"),
		get("/missing", "User-Agent: bot\x7f\r\n"),
		get("/quiet"),
		get("/plain", "Authorization: Basic dXNlcjpwYXNz\r\n"),
		get("/cond?log=1"),
		get("/cond?log=0"),
		"HEAD /file.txt HTTP/1.0\r\n\r\n",
	}
	for _, s := range []*server{ngx, edge} {
		for _, r := range reqs {
			roundTrip(t, s.Addr, r, strings.HasPrefix(r, "HEAD"))
		}
	}
	// nginx writes each line at once; edgeproxy flushes every 100 ms.
	time.Sleep(400 * time.Millisecond)
	_ = syscall.Getpid()
	for _, name := range []string{"combined.log", "py.log", "json.log", "cond.log"} {
		n, e := readLog(t, ngx, name), readLog(t, edge, name)
		if strings.Join(n, "\n") != strings.Join(e, "\n") {
			t.Errorf("%s differs:\n nginx:\n  %s\n edgeproxy:\n  %s", name, strings.Join(n, "\n  "), strings.Join(e, "\n  "))
		}
		if len(e) == 0 {
			t.Errorf("%s: no lines", name)
		}
	}
}

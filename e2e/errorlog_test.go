package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const errlogConf = `
worker_processes 1;
error_log {{.Tmp}}/logs/err.log;
events { worker_connections 1024; }
http {
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    server {
        listen 127.0.0.1:{{.Port}};
        server_name localhost;
        root {{.Dir}};
        location /dead/ { proxy_pass http://DEAD; }
        location /limited { limit_req zone=one; }
        location /quiet/ { log_not_found off; }
    }
}
`

var (
	errTime = regexp.MustCompile(`^[0-9/]+ [0-9:]+ `)
	errPid  = regexp.MustCompile(`\] [0-9]+#[0-9]+: \*[0-9]+ `)
)

func errLines(t *testing.T, s *server) []string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "logs", "err.log"))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "[error]") && !strings.Contains(l, "[warn]") {
			continue
		}
		l = errTime.ReplaceAllString(l, "TIME ")
		l = errPid.ReplaceAllString(l, "] PID: *N ")
		l = strings.ReplaceAll(l, s.Dir, "PREFIX")
		out = append(out, l)
	}
	return out
}

// error_log lines for a missing file, a forbidden directory index, a
// refused upstream and a rejected limit_req read like nginx's.
var excessDigit = regexp.MustCompile(`(excess: [0-9]+\.[0-9][0-9])[0-9]`)

func TestErrorLogDifferential(t *testing.T) {
	docs := t.TempDir()
	_ = os.MkdirAll(filepath.Join(docs, "dir"), 0o755)
	dead := deadAddr(t)
	ngx, edge := pair(t, strings.ReplaceAll(errlogConf, "DEAD", dead), docs)
	for _, s := range []*server{ngx, edge} {
		for _, r := range []string{get("/missing.html"), get("/dir/"), get("/dead/x?y=1"), get("/quiet/nothing"), get("/limited"), get("/limited")} {
			roundTrip(t, s.Addr, r, false)
		}
	}
	time.Sleep(300 * time.Millisecond)
	n, e := errLines(t, ngx), errLines(t, edge)
	mask := func(ls []string) string {
		// The excess's last digit is the milliseconds between the two
		// requests (rate 1r/m), which a loaded machine shifts.
		return excessDigit.ReplaceAllString(strings.ReplaceAll(strings.Join(ls, "\n"), docs, "DOCS"), "$1_")
	}
	if mask(n) != mask(e) {
		t.Errorf("error logs differ:\n nginx:\n%s\n edgeproxy:\n%s", mask(n), mask(e))
	}
	t.Logf("edgeproxy error log:\n%s", mask(e))
	if len(e) < 4 {
		t.Errorf("edgeproxy logged %d error lines", len(e))
	}
}

package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const accessConf = `
worker_processes 1;
events { worker_connections 64; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location /admin/ { allow 127.0.0.2; allow 127.0.1.0/24; deny all; }
        location /open/ { deny 10.0.0.0/8; }
        location /ret { deny all; return 200 "return runs before the access phase\n"; }
        location /first/ { deny 127.0.0.1; allow all; }
    }
}
`

func getFrom(t *testing.T, addr, src, path string) int {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, get(path))
	resp, err := http.ReadResponse(newReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// allow/deny: first matching rule wins, CIDRs, "all", and `return` is not
// subject to access rules — as nginx decides.
func TestAccessDifferential(t *testing.T) {
	docs := t.TempDir()
	for _, p := range []string{"admin/x", "open/x", "first/x"} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(docs, p)), 0o755)
		if err := os.WriteFile(filepath.Join(docs, p), []byte("ok\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ngx, edge := pair(t, accessConf, docs)
	for _, tc := range []struct{ src, path string }{
		{"127.0.0.1", "/admin/x"}, {"127.0.0.2", "/admin/x"}, {"127.0.1.9", "/admin/x"}, {"127.0.0.3", "/admin/x"},
		{"127.0.0.1", "/open/x"}, {"127.0.0.1", "/ret"}, {"127.0.0.1", "/first/x"}, {"127.0.0.2", "/first/x"},
	} {
		n, e := getFrom(t, ngx.Addr, tc.src, tc.path), getFrom(t, edge.Addr, tc.src, tc.path)
		if n != e {
			t.Errorf("%s from %s: nginx %d, edgeproxy %d", tc.path, tc.src, n, e)
		}
	}
	if getFrom(t, edge.Addr, "127.0.0.1", "/admin/x") != 403 || getFrom(t, edge.Addr, "127.0.0.2", "/admin/x") != 200 {
		t.Error("allow/deny did not decide")
	}
}

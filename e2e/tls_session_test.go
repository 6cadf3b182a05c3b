package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sessionConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    ssl_protocols TLSv1.2 TLSv1.3;
    EXTRA
    server {
        listen 127.0.0.1:{{.Port}};
        location / { return 200 "plain\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name example.com;
        ssl_certificate {{.Dir}}/ec.crt;
        ssl_certificate_key {{.Dir}}/ec.key;
        location / { return 200 "reused=$ssl_session_reused\n"; }
    }
}
`

func sessionServer(t *testing.T, kind, docs, extra string) *server {
	return start(t, kind, strings.Replace(sessionConf, "EXTRA", extra, 1), docs)
}

// resumes connects to first, then to second with the ticket it got, and
// reports whether the second handshake resumed (and what the server's
// $ssl_session_reused said).
func resumes(t *testing.T, first, second *server, ver uint16) (bool, string) {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "example.com", MinVersion: ver, MaxVersion: ver,
		ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	req := "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
	a := tlsGet(t, tlsAddr(t, first), cfg, req)
	if a.Err != nil {
		t.Fatalf("first handshake: %v", a.Err)
	}
	b := tlsGet(t, tlsAddr(t, second), cfg, req)
	if b.Err != nil {
		t.Fatalf("second handshake: %v", b.Err)
	}
	return b.state.DidResume, strings.TrimSpace(string(b.Body))
}

// Session tickets: resumption on TLS 1.2 and 1.3, across processes sharing
// an ssl_session_ticket_key file (several keys: the first encrypts, all
// decrypt), not across processes without one, none with
// ssl_session_tickets off, none once ssl_session_timeout has passed.
func TestTLSSessionTickets(t *testing.T) {
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "example.com")
	for name, n := range map[string]int{"k1.key": 80, "k2.key": 48, "bad.key": 47} {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		if err := os.WriteFile(filepath.Join(docs, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keyed := "ssl_session_ticket_key " + docs + "/k1.key;"
	a := sessionServer(t, "edgeproxy", docs, keyed)
	b := sessionServer(t, "edgeproxy", docs, keyed)
	// Rotation: k2 now encrypts, k1 still decrypts.
	c := sessionServer(t, "edgeproxy", docs, "ssl_session_ticket_key "+docs+"/k2.key; ssl_session_ticket_key "+docs+"/k1.key;")
	plain1 := sessionServer(t, "edgeproxy", docs, "")
	plain2 := sessionServer(t, "edgeproxy", docs, "")
	off := sessionServer(t, "edgeproxy", docs, "ssl_session_tickets off;")
	short := sessionServer(t, "edgeproxy", docs, "ssl_session_timeout 1s;")
	ngx := sessionServer(t, "nginx", docs, "ssl_session_cache shared:SSL:1m;")

	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		vn := tls.VersionName(ver)
		check := func(what string, first, second *server, want bool, wantVar string) {
			t.Helper()
			got, v := resumes(t, first, second, ver)
			if got != want || v != wantVar {
				t.Errorf("%s %s: resumed %v (%q), want %v (%q)", vn, what, got, v, want, wantVar)
			}
		}
		check("nginx, same process", ngx, ngx, true, "reused=r")
		check("same process", plain1, plain1, true, "reused=r")
		check("key file, other process", a, b, true, "reused=r")
		check("key file, back", b, a, true, "reused=r")
		check("old key decrypts", a, c, true, "reused=r")
		check("no key file, other process", plain1, plain2, false, "reused=.")
		check("tickets off", off, off, false, "reused=.")
		check("timeout not reached", short, short, true, "reused=r")

		// Past ssl_session_timeout the ticket is refused.
		cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "example.com", MinVersion: ver, MaxVersion: ver,
			ClientSessionCache: tls.NewLRUClientSessionCache(8)}
		req := "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
		if r := tlsGet(t, tlsAddr(t, short), cfg, req); r.Err != nil {
			t.Fatal(r.Err)
		}
		time.Sleep(1200 * time.Millisecond)
		if r := tlsGet(t, tlsAddr(t, short), cfg, req); r.Err != nil || r.state.DidResume {
			t.Errorf("%s: ticket older than ssl_session_timeout resumed (err %v)", vn, r.Err)
		}
	}

	// A key file of the wrong size is a -t error, as in nginx.
	conf := filepath.Join(t.TempDir(), "nginx.conf")
	_ = os.WriteFile(conf, []byte(render(t, strings.Replace(sessionConf, "EXTRA", "ssl_session_ticket_key "+docs+"/bad.key;", 1),
		confData{Port: freePort(t), Port2: freePort(t), Dir: docs})), 0o644)
	out, err := exec.Command(edgeBinary(t), "-t", "-c", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.key\" must be 48 or 80 bytes in "+conf+":6") {
		t.Errorf("bad ticket key: -t said %s", out)
	}
}

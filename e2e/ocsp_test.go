package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspResponder serves OCSP on loopback: each request is answered by the
// real `openssl ocsp` in responder mode (index file, CA as signer), run
// per request because its own server mode cannot bind to loopback only.
type ocspResponder struct {
	url      string
	requests atomic.Int64
}

func startOCSPResponder(t *testing.T, dir string) *ocspResponder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &ocspResponder{url: "http://" + ln.Addr().String()}
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		var der []byte
		if req.Method == http.MethodGet {
			p, _ := url.PathUnescape(strings.TrimPrefix(req.URL.EscapedPath(), "/"))
			der, _ = base64.StdEncoding.DecodeString(p)
		} else {
			der, _ = io.ReadAll(req.Body)
		}
		k := n.Add(1)
		in, out := filepath.Join(dir, fmt.Sprintf("req%d.der", k)), filepath.Join(dir, fmt.Sprintf("resp%d.der", k))
		_ = os.WriteFile(in, der, 0o644)
		cmd := exec.Command("openssl", "ocsp", "-index", filepath.Join(dir, "index.txt"), "-rsigner", filepath.Join(dir, "ca.crt"),
			"-rkey", filepath.Join(dir, "ca.key"), "-CA", filepath.Join(dir, "ca.crt"), "-reqin", in, "-respout", out, "-ndays", "1")
		if b, err := cmd.CombinedOutput(); err != nil {
			http.Error(w, string(b), 500)
			return
		}
		resp, _ := os.ReadFile(out)
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(resp)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

const ocspConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate {{.Dir}}/ca.crt;
    server {
        listen 127.0.0.1:{{.Port}};
        location / { return 200 "plain\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl default_server;
        server_name stapled.test;
        ssl_certificate {{.Dir}}/stapled.crt;
        ssl_certificate_key {{.Dir}}/stapled.key;
        location / { return 200 "$ssl_server_name\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name nourl.test;
        ssl_certificate {{.Dir}}/nourl.crt;
        ssl_certificate_key {{.Dir}}/nourl.key;
        location / { return 200 "$ssl_server_name\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name revoked.test;
        ssl_certificate {{.Dir}}/revoked.crt;
        ssl_certificate_key {{.Dir}}/revoked.key;
        location / { return 200 "$ssl_server_name\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name file.test;
        ssl_certificate {{.Dir}}/nourl.crt;
        ssl_certificate_key {{.Dir}}/nourl.key;
        ssl_stapling_file {{.Dir}}/staple.der;
        location / { return 200 "$ssl_server_name\n"; }
    }
}
`

func serverLogs(s *server) string {
	var b strings.Builder
	b.WriteString(s.log.String())
	for _, p := range []string{"error.log", "logs/error.log"} {
		if d, err := os.ReadFile(filepath.Join(s.Dir, p)); err == nil {
			b.Write(d)
		}
	}
	return b.String()
}

// OCSP stapling against nginx: a certificate naming a local responder gets
// a verified staple fetched in the background; ssl_stapling_file is
// stapled byte for byte; a revoked certificate and one without a responder
// URL get none (the latter with nginx's warning in the error log).
func TestOCSPStaplingDifferential(t *testing.T) {
	docs := t.TempDir()
	resp := startOCSPResponder(t, docs)
	ca := makeCert(t, certOpts{subject: pkix.Name{CommonName: "OCSP Test CA"}, ca: true})
	ca.write(t, docs, "ca")
	srvEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	stapled := makeCert(t, certOpts{subject: pkix.Name{CommonName: "stapled"}, parent: ca, dns: []string{"stapled.test"}, eku: srvEKU, ocspURL: resp.url})
	stapled.write(t, docs, "stapled", ca)
	revoked := makeCert(t, certOpts{subject: pkix.Name{CommonName: "revoked"}, parent: ca, dns: []string{"revoked.test"}, eku: srvEKU, ocspURL: resp.url})
	revoked.write(t, docs, "revoked", ca)
	nourl := makeCert(t, certOpts{subject: pkix.Name{CommonName: "nourl"}, parent: ca, dns: []string{"nourl.test", "file.test"}, eku: srvEKU})
	nourl.write(t, docs, "nourl", ca)
	exp := time.Now().Add(365 * 24 * time.Hour).UTC().Format("060102150405Z")
	idx := fmt.Sprintf("V\t%s\t\t%X\tunknown\t/CN=stapled\nR\t%s\t%s\t%X\tunknown\t/CN=revoked\n", exp, stapled.cert.SerialNumber,
		exp, time.Now().Add(-time.Hour).UTC().Format("060102150405Z"), revoked.cert.SerialNumber)
	if err := os.WriteFile(filepath.Join(docs, "index.txt"), []byte(idx), 0o644); err != nil {
		t.Fatal(err)
	}
	fileDER, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{Status: ocsp.Good, SerialNumber: nourl.cert.SerialNumber,
		ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(24 * time.Hour)}, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(docs, "staple.der"), fileDER, 0o644); err != nil {
		t.Fatal(err)
	}

	ngx, edge := pair(t, ocspConf, docs)
	staple := func(s *server, sni string) []byte {
		cfg := &tls.Config{InsecureSkipVerify: true, ServerName: sni}
		r := tlsGet(t, tlsAddr(t, s), cfg, "GET / HTTP/1.1\r\nHost: "+sni+"\r\n\r\n")
		if r.Err != nil {
			t.Fatalf("%s %s: %v", s.Name, sni, r.Err)
		}
		if string(r.Body) != sni+"\n" {
			t.Fatalf("%s %s: body %q", s.Name, sni, r.Body)
		}
		return r.state.OCSPResponse
	}
	// nginx fetches on the first handshake and staples from the next
	// ones; edgeproxy fetches at start. Both must staple within seconds.
	for _, s := range []*server{ngx, edge} {
		var got []byte
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got = staple(s, "stapled.test"); got != nil {
				break
			}
		}
		if got == nil {
			t.Errorf("%s: no OCSP staple from the responder", s.Name)
			continue
		}
		r, err := ocsp.ParseResponseForCert(got, stapled.cert, ca.cert)
		if err != nil || r.Status != ocsp.Good {
			t.Errorf("%s: staple does not verify as good: %v", s.Name, err)
		}
		if b := staple(s, "file.test"); string(b) != string(fileDER) {
			t.Errorf("%s: ssl_stapling_file stapled %d bytes, want the file's %d", s.Name, len(b), len(fileDER))
		}
		// The revoked certificate's status was asked for but is not
		// stapled; a certificate without a responder URL gets none.
		for i := 0; i < 10; i++ {
			if b := staple(s, "revoked.test"); b != nil {
				t.Errorf("%s: revoked certificate stapled", s.Name)
				break
			}
			if b := staple(s, "nourl.test"); b != nil {
				t.Errorf("%s: certificate without OCSP URL stapled", s.Name)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// nginx's warning about the certificate without a responder URL (read
	// once the servers have stopped writing their output).
	for _, s := range []*server{ngx, edge} {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		want := `"ssl_stapling" ignored, no OCSP responder URL in the certificate "` + docs + `/nourl.crt"`
		if logs := serverLogs(s); !strings.Contains(logs, want) {
			t.Errorf("%s: log lacks %q:\n%s", s.Name, want, logs)
		}
	}
	if resp.requests.Load() == 0 {
		t.Error("the responder was never asked")
	}
}

package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeCert creates a self-signed certificate for names (ECDSA P-256 or
// RSA-2048) as PEM files in dir.
func writeCert(t *testing.T, dir, base string, rsaKey bool, names ...string) {
	t.Helper()
	var priv any
	var pub any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, &k.PublicKey
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, &k.PublicKey
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0] + " " + base},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, base+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(filepath.Join(dir, base+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

const tlsConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        server_name example.com;
        return 301 https://$host$request_uri;
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name example.com;
        ssl_certificate {{.Dir}}/ec.crt;
        ssl_certificate_key {{.Dir}}/ec.key;
        ssl_certificate {{.Dir}}/rsa.crt;
        ssl_certificate_key {{.Dir}}/rsa.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384;
        ssl_prefer_server_ciphers on;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;
        add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
        add_header X-Frame-Options DENY;
        location / { return 200 "$scheme $https $ssl_protocol $ssl_server_name\n"; }
        location /app/ {
            proxy_pass http://BACKEND;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Host $host;
        }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name other.test;
        ssl_certificate {{.Dir}}/other.crt;
        ssl_certificate_key {{.Dir}}/other.key;
        location / { return 200 "other\n"; }
    }
}
`

// tlsPort finds the ssl port of a server started from tlsConf.
func tlsAddr(t *testing.T, s *server) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	m := sslListen.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no ssl listen in the config")
	}
	return m[1]
}

type tlsReply struct {
	reply
	state tls.ConnectionState
}

func tlsGet(t *testing.T, addr string, cfg *tls.Config, raw string) tlsReply {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return tlsReply{reply: reply{Err: err}}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return tlsReply{reply: reply{Err: err}}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return tlsReply{reply: reply{Err: err}}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return tlsReply{reply: reply{Status: resp.StatusCode, Header: resp.Header, Body: body}, state: c.ConnectionState()}
}

// The seed's TLS server: same handshakes, certificates, ciphers, headers,
// variables and redirect as nginx.
func TestTLSDifferential(t *testing.T) {
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "example.com")
	writeCert(t, docs, "rsa", true, "example.com")
	writeCert(t, docs, "other", false, "other.test")
	app := startBackend(t, "app")
	conf := strings.ReplaceAll(tlsConf, "BACKEND", app.addr)
	ngx, edge := pair(t, conf, docs)
	na, ea := tlsAddr(t, ngx), tlsAddr(t, edge)
	base := func(sni string) *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, ServerName: sni}
	}
	req := "GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"

	for _, v := range []struct {
		name string
		min  uint16
		max  uint16
		ok   bool
	}{{"TLS1.3", tls.VersionTLS13, tls.VersionTLS13, true}, {"TLS1.2", tls.VersionTLS12, tls.VersionTLS12, true}, {"TLS1.1", tls.VersionTLS10, tls.VersionTLS11, false}} {
		cfg := base("example.com")
		cfg.MinVersion, cfg.MaxVersion = v.min, v.max
		a, b := tlsGet(t, na, cfg, req), tlsGet(t, ea, cfg, req)
		if (a.Err == nil) != v.ok || (b.Err == nil) != v.ok {
			t.Errorf("%s: nginx err %v, edgeproxy err %v (want success %v)", v.name, a.Err, b.Err, v.ok)
			continue
		}
		if !v.ok {
			continue
		}
		if string(a.Body) != string(b.Body) || a.Status != b.Status {
			t.Errorf("%s: nginx %d %q, edgeproxy %d %q", v.name, a.Status, a.Body, b.Status, b.Body)
		}
		if v.max == tls.VersionTLS13 {
			// TLS 1.3 suites are fixed in Go (it prefers AES-128-GCM
			// where OpenSSL picks AES-256-GCM); both must be 1.3 suites.
			if b.state.Version != tls.VersionTLS13 || a.state.Version != tls.VersionTLS13 {
				t.Errorf("TLS1.3: versions nginx %x, edgeproxy %x", a.state.Version, b.state.Version)
			}
		} else if a.state.CipherSuite != b.state.CipherSuite {
			t.Errorf("%s cipher: nginx %s, edgeproxy %s", v.name, tls.CipherSuiteName(a.state.CipherSuite), tls.CipherSuiteName(b.state.CipherSuite))
		}
		for _, h := range []string{"Strict-Transport-Security", "X-Frame-Options", "Content-Type"} {
			if a.Header.Get(h) != b.Header.Get(h) {
				t.Errorf("%s %s: nginx %q, edgeproxy %q", v.name, h, a.Header.Get(h), b.Header.Get(h))
			}
		}
	}

	// SNI picks the server and its certificate; RSA-only clients get the RSA pair.
	for _, tc := range []struct {
		sni    string
		rsa    bool
		wantCN string
	}{{"other.test", false, "other.test other"}, {"example.com", false, "example.com ec"}, {"example.com", true, "example.com rsa"}, {"", false, "example.com ec"}} {
		cfg := base(tc.sni)
		if tc.rsa {
			cfg.MaxVersion = tls.VersionTLS12
			cfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		}
		host := tc.sni
		if host == "" {
			host = "example.com"
		}
		r := "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
		a, b := tlsGet(t, na, cfg, r), tlsGet(t, ea, cfg, r)
		if a.Err != nil || b.Err != nil {
			t.Errorf("sni %q rsa=%v: nginx %v, edgeproxy %v", tc.sni, tc.rsa, a.Err, b.Err)
			continue
		}
		acn, bcn := a.state.PeerCertificates[0].Subject.CommonName, b.state.PeerCertificates[0].Subject.CommonName
		if acn != tc.wantCN || bcn != tc.wantCN {
			t.Errorf("sni %q rsa=%v: certificate nginx %q, edgeproxy %q, want %q", tc.sni, tc.rsa, acn, bcn, tc.wantCN)
		}
		if string(a.Body) != string(b.Body) {
			t.Errorf("sni %q: body nginx %q, edgeproxy %q", tc.sni, a.Body, b.Body)
		}
	}

	// Session resumption with tickets.
	for _, s := range []string{na, ea} {
		cfg := base("example.com")
		cfg.MaxVersion = tls.VersionTLS12
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		first := tlsGet(t, s, cfg, req)
		second := tlsGet(t, s, cfg, req)
		if first.Err != nil || second.Err != nil || !second.state.DidResume {
			t.Errorf("%s: session not resumed (errors %v %v)", s, first.Err, second.Err)
		}
	}

	// X-Forwarded-Proto https reaches the app.
	a := tlsGet(t, na, base("example.com"), "GET /app/x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	b := tlsGet(t, ea, base("example.com"), "GET /app/x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if !strings.Contains(string(b.Body), "h:X-Forwarded-Proto=https") || string(a.Body) != string(b.Body) {
		t.Errorf("proxied over TLS:\n nginx %q\n edgeproxy %q", a.Body, b.Body)
	}

	// The plaintext server redirects to https like nginx.
	differential(t, ngx, edge, []dcase{{name: "https-redirect", raw: "GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 301}})
	_ = fmt.Sprint()
}

var sslListen = regexp.MustCompile(`listen (127\.0\.0\.1:[0-9]+) ssl`)

type tlsConfig = tls.Config

func newTLSConfig(sni string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: sni}
}

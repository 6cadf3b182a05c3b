package pipeline

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgeproxy/snapshot"
)

// tlsConn compiles a config with ssl servers (a self-signed certificate is
// written to the temp dir as DIR/c.pem, DIR/k.pem) and returns a TLS Conn.
func tlsConn(t testing.TB, conf string) (*Conn, *fakeTransport) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	_ = os.WriteFile(filepath.Join(dir, "c.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "k.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	snap := compile(t, strings.ReplaceAll(conf, "DIR", dir))
	ft := &fakeTransport{}
	c := NewConn(ft, snap, snap.Listeners[0], netip.MustParseAddrPort("127.0.0.1:5555"), netip.MustParseAddrPort("127.0.0.1:8443"), true)
	c.SetTLS("TLSv1.3", "TLS_AES_128_GCM_SHA256", "a", false)
	return c, ft
}

const mtlsPipelineConf = `events {} http { keepalive_requests 1000000000;
	ssl_certificate DIR/c.pem; ssl_certificate_key DIR/k.pem; ssl_client_certificate DIR/c.pem;
	server { listen 127.0.0.1:8443 ssl; server_name a; ssl_verify_client optional;
		location = /v { return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_serial|$ssl_client_v_remain|$ssl_session_reused"; } }
	server { listen 127.0.0.1:8443 ssl; server_name b; ssl_verify_client on;
		location / { return 200 "in"; } }
}`

// The $ssl_client_* variables and the ssl_verify_client check cost no
// allocation per request.
func TestTLSClientVarsZeroAllocs(t *testing.T) {
	c, ft := tlsConn(t, mtlsPipelineConf)
	c.SetClientCert(&snapshot.ClientCert{Verify: "SUCCESS", Present: true, SDN: "CN=x,O=y", Serial: "0A",
		NotAfterSec: time.Now().Add(49 * time.Hour).Unix()})
	req := []byte("GET /v HTTP/1.1\r\nHost: a\r\n\r\n")
	c.Feed(req)
	if out := ft.out.String(); !strings.HasSuffix(out, "\r\n\r\nSUCCESS|CN=x,O=y|0A|2|.") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if raceEnabled {
		return
	}
	allocs := testing.AllocsPerRun(200, func() {
		ft.out.Reset()
		c.Feed(req)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
}

// A failed verification and a missing certificate are nginx's 495 and
// 496 pages, sent as 400, closing the connection.
func TestTLSVerifyClientPages(t *testing.T) {
	for _, tc := range []struct {
		host string
		cc   *snapshot.ClientCert
		want string
	}{
		{"b", nil, "No required SSL certificate was sent"},
		{"b", &snapshot.ClientCert{Verify: "FAILED:x", Failed: true, Present: true}, "The SSL certificate error"},
		{"a", &snapshot.ClientCert{Verify: "FAILED:x", Failed: true, OptionalErr: true, Present: true}, "The SSL certificate error"},
	} {
		c, ft := tlsConn(t, mtlsPipelineConf)
		if tc.cc != nil {
			c.SetClientCert(tc.cc)
		}
		c.Feed([]byte("GET /v HTTP/1.1\r\nHost: " + tc.host + "\r\n\r\n"))
		out := ft.out.String()
		if !strings.HasPrefix(out, "HTTP/1.1 400 Bad Request\r\n") || !strings.Contains(out, "<center>"+tc.want+"</center>") ||
			!strings.Contains(out, "Connection: close") || !ft.closed {
			t.Errorf("%s %+v: got\n%s", tc.host, tc.cc, out)
		}
	}
}

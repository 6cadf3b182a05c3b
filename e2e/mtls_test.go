package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert is a certificate made by a test, with its key and its PEM.
type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

type certOpts struct {
	subject   pkix.Name
	ca        bool
	parent    *testCert // nil: self-signed
	notBefore time.Time
	notAfter  time.Time
	eku       []x509.ExtKeyUsage
	serial    int64
	dns       []string
	ocspURL   string
}

// makeCert creates an ECDSA P-256 certificate.
func makeCert(t *testing.T, o certOpts) *testCert {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(30 * 24 * time.Hour)
	}
	if o.serial == 0 {
		o.serial = time.Now().UnixNano()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(o.serial),
		Subject:               o.subject,
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		BasicConstraintsValid: true,
		IsCA:                  o.ca,
		ExtKeyUsage:           o.eku,
		DNSNames:              o.dns,
	}
	if o.ocspURL != "" {
		tmpl.OCSPServer = []string{o.ocspURL}
	}
	if o.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	parent, signer := tmpl, crypto.Signer(k)
	if o.parent != nil {
		parent, signer = o.parent.cert, o.parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: k, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// write stores the certificate (followed by chain) and key as base.crt and
// base.key in dir.
func (c *testCert) write(t *testing.T, dir, base string, chain ...*testCert) {
	t.Helper()
	kb, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]byte{}, c.pem...)
	for _, p := range chain {
		all = append(all, p.pem...)
	}
	if err := os.WriteFile(filepath.Join(dir, base+".crt"), all, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, base+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsCert is the client-side form: leaf, then the chain sent with it.
func (c *testCert) tlsCert(chain ...*testCert) *tls.Certificate {
	tc := &tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
	for _, p := range chain {
		tc.Certificate = append(tc.Certificate, p.cert.Raw)
	}
	return tc
}

const mtlsConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    ssl_certificate {{.Dir}}/srv.crt;
    ssl_certificate_key {{.Dir}}/srv.key;
    ssl_client_certificate {{.Dir}}/ca.crt;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:{{.Port}};
        location / { return 200 "plain [$ssl_client_verify]\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl default_server;
        server_name off.test;
        location / { return 200 "off $ssl_client_verify [$ssl_client_s_dn]\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name on.test;
        ssl_verify_client on;
        location / { return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn|$ssl_client_serial|$ssl_client_fingerprint|$ssl_client_v_start|$ssl_client_v_end|$ssl_client_v_remain\n"; }
        location /escaped { return 200 "$ssl_client_escaped_cert"; }
        location /raw { return 200 "$ssl_client_raw_cert"; }
        location /cert { add_header X-Cert $ssl_client_cert; return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name deep.test;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / { return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name crl.test;
        ssl_verify_client optional;
        ssl_verify_depth 2;
        ssl_crl {{.Dir}}/all.crl;
        error_page 495 =200 /why;
        location / { return 200 "$ssl_client_verify|$ssl_client_s_dn\n"; }
        location = /why { return 200 "why $ssl_client_verify\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name crlroot.test;
        ssl_verify_client optional;
        ssl_verify_depth 2;
        ssl_crl {{.Dir}}/root.crl;
        error_page 495 =200 /why;
        location / { return 200 "$ssl_client_verify|$ssl_client_s_dn\n"; }
        location = /why { return 200 "why $ssl_client_verify\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name zero.test;
        ssl_verify_client optional;
        ssl_verify_depth 0;
        error_page 495 =200 /why;
        location / { return 200 "$ssl_client_verify|$ssl_client_s_dn\n"; }
        location = /why { return 200 "why $ssl_client_verify\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name opt.test;
        ssl_verify_client optional;
        location / { return 200 "$ssl_client_verify|$ssl_client_s_dn\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name noca.test;
        ssl_verify_client optional_no_ca;
        location / { return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        server_name page.test;
        ssl_verify_client on;
        error_page 495 496 =403 /denied;
        location / { return 200 "in\n"; }
        location = /denied { return 403 "denied: $ssl_client_verify\n"; }
    }
}
`

// Mutual TLS against nginx: each kind of client certificate (none, valid,
// through an intermediate, self-signed, from an unknown CA, expired, not
// yet valid, for servers only) on servers with each ssl_verify_client mode
// gets the same status, body ($ssl_client_* variables) and connection
// close as from nginx.
func TestMutualTLSDifferential(t *testing.T) {
	docs := t.TempDir()
	root := makeCert(t, certOpts{subject: pkix.Name{CommonName: "Test Root CA", Organization: []string{"Edge Test"}, Country: []string{"FR"}}, ca: true})
	inter := makeCert(t, certOpts{subject: pkix.Name{CommonName: "Test Intermediate", Organization: []string{"Edge Test"}}, ca: true, parent: root})
	other := makeCert(t, certOpts{subject: pkix.Name{CommonName: "Other CA"}, ca: true})
	srv := makeCert(t, certOpts{subject: pkix.Name{CommonName: "server"}, parent: root,
		dns: []string{"off.test", "on.test", "deep.test", "opt.test", "noca.test", "page.test", "zero.test", "crl.test", "crlroot.test"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	srv.write(t, docs, "srv")
	if err := os.WriteFile(filepath.Join(docs, "ca.crt"), root.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	clientEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	subj := pkix.Name{CommonName: "alice, \"the\" <admin>", Organization: []string{"Edge+Test"}, OrganizationalUnit: []string{"Ops"},
		Country: []string{"DE"}, Locality: []string{"Berlin"}, Province: []string{"BE"},
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: []int{1, 2, 840, 113549, 1, 9, 1}, Value: "alice@example.test"}}}
	good := makeCert(t, certOpts{subject: subj, parent: root, eku: clientEKU, serial: 0x0A1B2C3D4E5F})
	viaInter := makeCert(t, certOpts{subject: pkix.Name{CommonName: "bob"}, parent: inter, eku: clientEKU})
	self := makeCert(t, certOpts{subject: pkix.Name{CommonName: "mallory"}, eku: clientEKU})
	unknown := makeCert(t, certOpts{subject: pkix.Name{CommonName: "eve"}, parent: other, eku: clientEKU})
	expired := makeCert(t, certOpts{subject: pkix.Name{CommonName: "old"}, parent: root, eku: clientEKU,
		notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	future := makeCert(t, certOpts{subject: pkix.Name{CommonName: "future"}, parent: root, eku: clientEKU,
		notBefore: time.Now().Add(24 * time.Hour), notAfter: time.Now().Add(48 * time.Hour)})
	serverOnly := makeCert(t, certOpts{subject: pkix.Name{CommonName: "wrong purpose"}, parent: root, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	revokedCert := makeCert(t, certOpts{subject: pkix.Name{CommonName: "revoked"}, parent: root, eku: clientEKU})
	crl := func(ca *testCert, revoked ...*testCert) []byte {
		var entries []x509.RevocationListEntry
		for _, r := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: r.cert.SerialNumber, RevocationTime: time.Now().Add(-time.Hour)})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour),
			NextUpdate: time.Now().Add(24 * time.Hour), RevokedCertificateEntries: entries}, ca.cert, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	rootCRL := crl(root, revokedCert)
	_ = os.WriteFile(filepath.Join(docs, "root.crl"), rootCRL, 0o644)
	_ = os.WriteFile(filepath.Join(docs, "all.crl"), append(append([]byte{}, rootCRL...), crl(inter)...), 0o644)
	noEKU := makeCert(t, certOpts{subject: pkix.Name{CommonName: "no eku", Organization: []string{"Ünïcode Org"}}, parent: root})

	ngx, edge := pair(t, mtlsConf, docs)
	na, ea := tlsAddr(t, ngx), tlsAddr(t, edge)

	clients := []struct {
		name string
		cert *tls.Certificate
	}{
		{"none", nil},
		{"good", good.tlsCert()},
		{"via-intermediate", viaInter.tlsCert(inter)},
		{"intermediate-missing", viaInter.tlsCert()},
		{"self-signed", self.tlsCert()},
		{"unknown-ca", unknown.tlsCert()},
		{"unknown-ca-chain", unknown.tlsCert(other)},
		{"expired", expired.tlsCert()},
		{"not-yet-valid", future.tlsCert()},
		{"server-purpose", serverOnly.tlsCert()},
		{"no-eku", noEKU.tlsCert()},
		{"revoked", revokedCert.tlsCert()},
	}
	paths := map[string][]string{
		"on.test":      {"/", "/escaped", "/raw", "/cert"},
		"deep.test":    {"/"},
		"zero.test":    {"/"},
		"crl.test":     {"/"},
		"crlroot.test": {"/"},
		"opt.test":     {"/"},
		"noca.test":    {"/"},
		"off.test":     {"/"},
		"page.test":    {"/"},
	}
	for _, ver := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, cl := range clients {
			for host, ps := range paths {
				for _, p := range ps {
					cfg := &tls.Config{InsecureSkipVerify: true, ServerName: host, MinVersion: ver, MaxVersion: ver}
					cert := cl.cert
					cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
						if cert == nil {
							return &tls.Certificate{}, nil
						}
						return cert, nil
					}
					req := "GET " + p + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
					a, b := tlsGet(t, na, cfg, req), tlsGet(t, ea, cfg, req)
					name := cl.name + " " + host + p + " " + tls.VersionName(ver)
					if (a.Err == nil) != (b.Err == nil) {
						t.Errorf("%s: nginx err %v, edgeproxy err %v", name, a.Err, b.Err)
						continue
					}
					if a.Err != nil {
						continue
					}
					if os.Getenv("MTLS_LOG") != "" && p == "/" {
						t.Logf("%s: %d %q", name, a.Status, a.Body)
					}
					if a.Status != b.Status || normBody(a.Body) != normBody(b.Body) {
						t.Errorf("%s:\n  nginx     %d %q\n  edgeproxy %d %q", name, a.Status, normBody(a.Body), b.Status, normBody(b.Body))
					}
					for _, h := range []string{"Connection", "X-Cert", "Content-Type"} {
						if a.Header.Get(h) != b.Header.Get(h) {
							t.Errorf("%s: %s nginx %q, edgeproxy %q", name, h, a.Header.Get(h), b.Header.Get(h))
						}
					}
				}
			}
		}
	}
	// A resumed session keeps its client certificate (it travels in the
	// ticket): same verification result and variables, no new request for
	// a certificate.
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, s := range []string{na, ea} {
			cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "on.test", MinVersion: ver, MaxVersion: ver,
				ClientSessionCache:   tls.NewLRUClientSessionCache(4),
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return good.tlsCert(), nil }}
			req := "GET / HTTP/1.1\r\nHost: on.test\r\n\r\n"
			first, second := tlsGet(t, s, cfg, req), tlsGet(t, s, cfg, req)
			if first.Err != nil || second.Err != nil || !second.state.DidResume || second.Status != 200 ||
				string(first.Body) != string(second.Body) || !strings.HasPrefix(string(second.Body), "SUCCESS|emailAddress=alice") {
				t.Errorf("%s %s resumed with a client certificate: resumed %v, %d %q then %d %q (%v %v)", s, tls.VersionName(ver),
					second.state.DidResume, first.Status, first.Body, second.Status, second.Body, first.Err, second.Err)
			}
		}
	}
	// The CA names of ssl_client_certificate are advertised.
	for _, s := range []string{na, ea} {
		var got []string
		cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "on.test", GetClientCertificate: func(ri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			for _, n := range ri.AcceptableCAs {
				var rdn pkix.RDNSequence
				if _, err := asn1Unmarshal(n, &rdn); err == nil {
					var nm pkix.Name
					nm.FillFromRDNSequence(&rdn)
					got = append(got, nm.CommonName)
				}
			}
			return good.tlsCert(), nil
		}}
		r := tlsGet(t, s, cfg, "GET / HTTP/1.1\r\nHost: on.test\r\n\r\n")
		if r.Err != nil || strings.Join(got, ",") != "Test Root CA" {
			t.Errorf("%s: acceptable CAs %q (err %v), want the root", s, got, r.Err)
		}
	}
	// A plaintext request has no client certificate variables.
	differential(t, ngx, edge, []dcase{{name: "plain", raw: get("/"), status: 200}})
}

func asn1Unmarshal(b []byte, v any) ([]byte, error) { return asn1.Unmarshal(b, v) }

package snapshot

import (
	"crypto/tls"
	"fmt"
	"strings"

	"edgeproxy/config"
)

// TLSConf is a server's merged ssl_* settings.
type TLSConf struct {
	CertFiles, KeyFiles []string
	Certs               []tls.Certificate
	MinVersion          uint16
	MaxVersion          uint16
	Ciphers             []uint16 // nil: Go's defaults
	Curves              []tls.CurveID
	NoTickets           bool
}

func defaultTLS() TLSConf {
	// nginx 1.22's default "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3" is narrowed to
	// TLS 1.2+: Debian's OpenSSL 3 refuses 1.0/1.1 at its default security
	// level anyway.
	return TLSConf{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
}

// openSSLCiphers maps OpenSSL cipher names to Go's TLS 1.2 suites (TLS 1.3
// suites are fixed in Go and always enabled).
var openSSLCiphers = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	// TLS 1.3 names are accepted and mean nothing more (always on in Go).
	"TLS_AES_128_GCM_SHA256":       0,
	"TLS_AES_256_GCM_SHA384":       0,
	"TLS_CHACHA20_POLY1305_SHA256": 0,
}

// cipherKeywords are OpenSSL selection keywords; a string made only of
// them and of explicit names keeps Go's default suites for the keywords.
func isCipherKeyword(s string) bool {
	s = strings.TrimLeft(s, "!-+@")
	switch strings.ToUpper(s) {
	case "HIGH", "MEDIUM", "LOW", "ALL", "DEFAULT", "COMPLEMENTOFDEFAULT", "ANULL", "ENULL", "MD5", "RC4", "DES", "3DES",
		"EXPORT", "PSK", "SRP", "DSS", "CAMELLIA", "ARIA", "SEED", "IDEA", "SHA1", "SHA", "SHA256", "SHA384", "ECDHE",
		"EECDH", "EDH", "DHE", "AESGCM", "AES", "CHACHA20", "KRSA", "ARSA", "AECDSA", "STRENGTH", "SECLEVEL=0", "SECLEVEL=1", "SECLEVEL=2":
		return true
	}
	return strings.HasPrefix(strings.ToUpper(s), "SECLEVEL=")
}

func (c *compiler) tlsDirective(d *config.Directive, t *TLSConf, firsts map[string]bool) error {
	first := !firsts[d.Name]
	firsts[d.Name] = true
	switch d.Name {
	case "ssl":
		return errAt(d, `the "ssl" directive is deprecated and not supported by edgeproxy, use the "listen ... ssl" directive instead`)
	case "ssl_certificate":
		if first {
			t.CertFiles = nil
		}
		t.CertFiles = append(t.CertFiles, c.path(d.Args[0]))
	case "ssl_certificate_key":
		if first {
			t.KeyFiles = nil
		}
		t.KeyFiles = append(t.KeyFiles, c.path(d.Args[0]))
	case "ssl_protocols":
		t.MinVersion, t.MaxVersion = 0, 0
		for _, p := range d.Args {
			var v uint16
			switch p {
			case "TLSv1":
				v = tls.VersionTLS10
			case "TLSv1.1":
				v = tls.VersionTLS11
			case "TLSv1.2":
				v = tls.VersionTLS12
			case "TLSv1.3":
				v = tls.VersionTLS13
			case "SSLv2", "SSLv3":
				c.note(d, fmt.Sprintf("%s is not supported by Go's TLS and is ignored", p))
				continue
			default:
				return errAt(d, "invalid value %q in \"ssl_protocols\" directive", p)
			}
			if t.MinVersion == 0 || v < t.MinVersion {
				t.MinVersion = v
			}
			if v > t.MaxVersion {
				t.MaxVersion = v
			}
		}
		if t.MinVersion == 0 {
			return errAt(d, "no usable protocol in \"ssl_protocols\"")
		}
	case "ssl_ciphers":
		t.Ciphers = nil
		explicit := false
		for _, name := range strings.Split(d.Args[0], ":") {
			if name == "" {
				continue
			}
			if id, ok := openSSLCiphers[name]; ok {
				if id != 0 {
					t.Ciphers = append(t.Ciphers, id)
				}
				explicit = true
				continue
			}
			if isCipherKeyword(name) {
				continue
			}
			return errAt(d, "unknown cipher %q in \"ssl_ciphers\" (edgeproxy maps OpenSSL names to Go's TLS suites)", name)
		}
		if !explicit {
			t.Ciphers = nil // keywords only: Go's default, secure suites
		}
	case "ssl_ecdh_curve":
		t.Curves = nil
		for _, name := range strings.Split(d.Args[0], ":") {
			switch name {
			case "auto":
				t.Curves = nil
			case "X25519", "x25519":
				t.Curves = append(t.Curves, tls.X25519)
			case "prime256v1", "secp256r1", "P-256":
				t.Curves = append(t.Curves, tls.CurveP256)
			case "secp384r1", "P-384":
				t.Curves = append(t.Curves, tls.CurveP384)
			case "secp521r1", "P-521":
				t.Curves = append(t.Curves, tls.CurveP521)
			default:
				return errAt(d, "unknown curve %q in \"ssl_ecdh_curve\"", name)
			}
		}
	case "ssl_session_tickets":
		t.NoTickets = d.Args[0] == "off"
	case "ssl_session_cache", "ssl_session_timeout":
		c.note(d, fmt.Sprintf("%q: Go resumes sessions with tickets (valid 7 days); there is no server-side session-ID cache", d.Name))
	case "ssl_buffer_size":
		c.note(d, `"ssl_buffer_size" is accepted; Go sizes TLS records itself`)
	case "ssl_dhparam":
		c.note(d, `"ssl_dhparam": Go's TLS has no DHE suites; only ECDHE is used`)
	case "ssl_stapling", "ssl_stapling_verify", "ssl_trusted_certificate":
		if d.Name != "ssl_trusted_certificate" && d.Args[0] == "on" {
			c.note(d, fmt.Sprintf("%q: OCSP stapling is not implemented yet; no staple is sent", d.Name))
		}
	}
	return nil
}

// loadCerts loads the certificate pairs of a server (a `-t` error names the
// directive's file:line on failure, never a crash).
func (c *compiler) loadCerts(t *TLSConf, d *config.Directive) error {
	if len(t.CertFiles) != len(t.KeyFiles) {
		return errAt(d, "no \"ssl_certificate_key\" is defined for certificate %q", t.CertFiles[len(t.CertFiles)-1])
	}
	t.Certs = nil
	for i := range t.CertFiles {
		cert, err := tls.LoadX509KeyPair(t.CertFiles[i], t.KeyFiles[i])
		if err != nil {
			return errAt(d, "cannot load certificate %q: %v", t.CertFiles[i], err)
		}
		t.Certs = append(t.Certs, cert)
	}
	return nil
}

// OpenSSLCipherName returns the OpenSSL name of a Go cipher suite ID.
func OpenSSLCipherName(id uint16) (string, bool) {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256:
		return "TLS_AES_128_GCM_SHA256", true
	case tls.TLS_AES_256_GCM_SHA384:
		return "TLS_AES_256_GCM_SHA384", true
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		return "TLS_CHACHA20_POLY1305_SHA256", true
	}
	for n, v := range openSSLCiphers {
		if v == id && v != 0 {
			return n, true
		}
	}
	return "", false
}

package snapshot

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"edgeproxy/config"
)

// ssl_verify_client modes (ngx_http_ssl_verify: off=0, on=1, optional=2,
// optional_no_ca=3).
const (
	VerifyOff = iota
	VerifyOn
	VerifyOptional
	VerifyOptionalNoCA
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
	// SessionTimeout is ssl_session_timeout, the age past which a session
	// ticket is refused (nginx's default 5m).
	SessionTimeout time.Duration
	// TicketKeyFiles are the ssl_session_ticket_key files; TicketKeys the
	// Go ticket keys derived from them (the first encrypts, all decrypt).
	TicketKeyFiles []string
	TicketKeys     [][32]byte
	// TicketRedis is the Redis of `ssl_session_ticket_key redis:ADDR`:
	// ticket keys shared and rotated by the fleet (package fleet).
	TicketRedis string

	// OCSP stapling: a DER file stapled as is, or a Staple per certificate
	// (nil where stapling is off or impossible) kept fresh by the TLS
	// transport from the certificate's responder.
	Stapling          bool
	StaplingVerify    bool
	StaplingFile      string
	StaplingResponder string
	Staples           []*Staple
	TrustedCerts      []*x509.Certificate // ssl_trusted_certificate, to find issuers
	// Warnings are nginx's configuration warnings ("ssl_stapling"
	// ignored, ...): -t prints them and the TLS transport writes them to
	// the error log at start.
	Warnings []string

	// Mutual TLS. ClientCAs are the ssl_client_certificate CAs: their
	// names are sent in the CertificateRequest and they are trusted; Trust
	// adds ssl_trusted_certificate (trusted, not advertised), as nginx.
	Verify       int
	VerifyDepth  int // ssl_verify_depth, nginx's default 1
	ClientCAFile string
	TrustedFile  string
	ClientCAs    *x509.CertPool
	Trust        *x509.CertPool
	// CRLFile is ssl_crl; CRLs its revocation lists. With CRLs every
	// certificate of a client's chain, the anchor included, needs one
	// (X509_V_FLAG_CRL_CHECK_ALL, as nginx sets).
	CRLFile string
	CRLs    []*x509.RevocationList

	// Config is the server's crypto/tls configuration, built once at
	// compile time (certificates, client authentication, ticket keys);
	// nil for servers without "listen ... ssl".
	Config *tls.Config
	// VerifyDirective is where ssl_verify_client was set (for errors).
	verifyAt *config.Directive
}

// ClientCert is what a client certificate gives the $ssl_client_*
// variables, computed once per connection by the TLS transport.
type ClientCert struct {
	Verify      string // $ssl_client_verify: SUCCESS, FAILED:reason, NONE
	Failed      bool   // verification failed
	OptionalErr bool   // the failure is one optional_no_ca lets through
	SDN, IDN    string // RFC 2253 subject / issuer
	Serial      string // upper-case hex
	Fingerprint string // SHA-1 of the DER, lower-case hex
	RawPEM      string // $ssl_client_raw_cert
	Cert        string // $ssl_client_cert (PEM, continuation lines tab-indented)
	EscapedPEM  string // $ssl_client_escaped_cert
	VStart      string // $ssl_client_v_start
	VEnd        string // $ssl_client_v_end
	NotAfterSec int64  // for $ssl_client_v_remain
	Present     bool   // a certificate was sent
}

func defaultTLS() TLSConf {
	// nginx 1.22's default "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3" is narrowed to
	// TLS 1.2+: Debian's OpenSSL 3 refuses 1.0/1.1 at its default security
	// level anyway.
	return TLSConf{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13, VerifyDepth: 1, SessionTimeout: 5 * time.Minute}
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
	case "ssl_verify_client":
		switch d.Args[0] {
		case "off":
			t.Verify = VerifyOff
		case "on":
			t.Verify = VerifyOn
		case "optional":
			t.Verify = VerifyOptional
		case "optional_no_ca":
			t.Verify = VerifyOptionalNoCA
		default:
			// ngx_conf_set_enum_slot's wording
			return errAt(d, "invalid value \"%s\" in \"%s\" directive, it must be \"on\", \"off\", \"optional\" or \"optional_no_ca\"", d.Args[0], d.Name)
		}
		t.verifyAt = d
	case "ssl_verify_depth":
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n < 0 {
			return errAt(d, "invalid value \"%s\" in \"%s\" directive", d.Args[0], d.Name)
		}
		t.VerifyDepth = n
	case "ssl_client_certificate":
		t.ClientCAFile = c.path(d.Args[0])
	case "ssl_crl":
		t.CRLFile = c.path(d.Args[0])
	case "ssl_session_tickets":
		t.NoTickets = d.Args[0] == "off"
	case "ssl_session_timeout":
		v, err := config.ParseSeconds(d.Args[0])
		if err != nil {
			return errAt(d, "invalid value \"%s\" in \"%s\" directive", d.Args[0], d.Name)
		}
		t.SessionTimeout = v
	case "ssl_session_ticket_key":
		if first {
			t.TicketKeyFiles, t.TicketRedis = nil, ""
		}
		if addr, ok := strings.CutPrefix(d.Args[0], "redis:"); ok {
			// edgeproxy extension: keys shared by the fleet through Redis.
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return errAt(d, "invalid redis address %q", d.Args[0])
			}
			t.TicketRedis = addr
			return nil
		}
		t.TicketKeyFiles = append(t.TicketKeyFiles, c.path(d.Args[0]))
		if _, err := readTicketKey(t.TicketKeyFiles[len(t.TicketKeyFiles)-1]); err != nil {
			return errAt(d, "%v", err)
		}
	case "ssl_session_cache":
		if d.Args[0] != "off" && d.Args[0] != "none" {
			c.note(d, `"ssl_session_cache": Go's TLS server resumes sessions with tickets only (TLS 1.2 and 1.3); there is no server-side session-ID cache`)
		}
	case "ssl_buffer_size":
		c.note(d, `"ssl_buffer_size" is accepted; Go sizes TLS records itself`)
	case "ssl_dhparam":
		c.note(d, `"ssl_dhparam": Go's TLS has no DHE suites; only ECDHE is used`)
	case "ssl_trusted_certificate":
		t.TrustedFile = c.path(d.Args[0])
	case "ssl_stapling":
		t.Stapling = d.Args[0] == "on"
	case "ssl_stapling_verify":
		t.StaplingVerify = d.Args[0] == "on"
	case "ssl_stapling_file":
		t.StaplingFile = c.path(d.Args[0])
	case "ssl_stapling_responder":
		t.StaplingResponder = d.Args[0]
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
	if t.Verify != VerifyOff && t.ClientCAFile == "" && t.Verify != VerifyOptionalNoCA {
		// ngx_http_ssl_merge_srv_conf
		at := t.verifyAt
		if at == nil {
			at = d
		}
		return errAt(at, "no ssl_client_certificate for ssl_verify_client")
	}
	t.ClientCAs, t.Trust = nil, nil
	t.TrustedCerts = nil
	if t.Verify != VerifyOff || t.ClientCAFile != "" || t.TrustedFile != "" {
		t.Trust = x509.NewCertPool()
		if t.ClientCAFile != "" {
			pool, _, err := loadCAs(t.ClientCAFile, t.Trust)
			if err != nil {
				return errAt(d, "%v", err)
			}
			t.ClientCAs = pool
		}
		if t.TrustedFile != "" {
			_, certs, err := loadCAs(t.TrustedFile, t.Trust)
			if err != nil {
				return errAt(d, "%v", err)
			}
			t.TrustedCerts = certs
		}
	}
	t.CRLs = nil
	if t.CRLFile != "" {
		crls, err := loadCRLs(t.CRLFile)
		if err != nil {
			return errAt(d, "%v", err)
		}
		t.CRLs = crls
	}
	if err := c.stapling(t, d); err != nil {
		return err
	}
	t.TicketKeys = nil
	for _, f := range t.TicketKeyFiles {
		k, err := readTicketKey(f)
		if err != nil {
			return errAt(d, "%v", err)
		}
		t.TicketKeys = append(t.TicketKeys, k)
	}
	t.Config = buildTLSConfig(t)
	return nil
}

// readTicketKey reads an nginx ticket key file (48 or 80 random bytes,
// ngx_ssl_session_ticket_keys) and derives a Go ticket key from it: the
// same file gives the same key in every process, so tickets issued by one
// node resume on another. The ticket format is Go's, not OpenSSL's.
func readTicketKey(file string) ([32]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return [32]byte{}, fmt.Errorf("open() \"%s\" failed (%v)", file, err)
	}
	if len(b) != 48 && len(b) != 80 {
		return [32]byte{}, fmt.Errorf("\"%s\" must be 48 or 80 bytes", file)
	}
	return sha256.Sum256(b), nil
}

// issuedTag marks the SessionState.Extra entry holding when a ticket was
// issued (unix nanoseconds), for ssl_session_timeout.
var issuedTag = []byte("edgeproxy-issued:")

func ticketIssued(extra [][]byte) (time.Time, bool) {
	for _, e := range extra {
		if len(e) == len(issuedTag)+8 && bytes.HasPrefix(e, issuedTag) {
			return time.Unix(0, int64(binary.BigEndian.Uint64(e[len(issuedTag):]))), true
		}
	}
	return time.Time{}, false
}

func withIssued(extra [][]byte, now time.Time) [][]byte {
	out := make([][]byte, 0, len(extra)+1)
	for _, e := range extra {
		if !bytes.HasPrefix(e, issuedTag) {
			out = append(out, e)
		}
	}
	e := append(append(make([]byte, 0, len(issuedTag)+8), issuedTag...), make([]byte, 8)...)
	binary.BigEndian.PutUint64(e[len(issuedTag):], uint64(now.UnixNano()))
	return append(out, e)
}

// loadCAs reads a PEM file of certificates into a new pool and into also
// (SSL_CTX_load_verify_locations; an unreadable or empty file is an error
// like nginx's).
func loadCAs(file string, also *x509.CertPool) (*x509.CertPool, []*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("SSL_CTX_load_verify_locations(\"%s\") failed (%v)", file, err)
	}
	pool := x509.NewCertPool()
	var list []*x509.Certificate
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("SSL_CTX_load_verify_locations(\"%s\") failed (%v)", file, err)
		}
		pool.AddCert(cert)
		also.AddCert(cert)
		list = append(list, cert)
	}
	if len(list) == 0 {
		return nil, nil, fmt.Errorf("SSL_CTX_load_verify_locations(\"%s\") failed (no certificate in the file)", file)
	}
	return pool, list, nil
}

// loadCRLs reads the PEM (or DER) revocation lists of ssl_crl
// (X509_load_crl_file).
func loadCRLs(file string) ([]*x509.RevocationList, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("X509_LOOKUP_load_file(\"%s\") failed (%v)", file, err)
	}
	var out []*x509.RevocationList
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "X509 CRL" {
			continue
		}
		crl, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("X509_LOOKUP_load_file(\"%s\") failed (%v)", file, err)
		}
		out = append(out, crl)
	}
	if len(out) == 0 {
		crl, err := x509.ParseRevocationList(b)
		if err != nil {
			return nil, fmt.Errorf("X509_LOOKUP_load_file(\"%s\") failed (no CRL in the file)", file)
		}
		out = append(out, crl)
	}
	return out, nil
}

// stapling prepares OCSP stapling for each certificate of a server
// (ngx_ssl_stapling): ssl_stapling_file is read now and stapled as is; else
// the certificate needs its issuer (in its chain or ssl_trusted_certificate)
// and a responder URL (its own or ssl_stapling_responder), and without one
// of them stapling is skipped with nginx's warning.
func (c *compiler) stapling(t *TLSConf, d *config.Directive) error {
	t.Staples, t.Warnings = nil, nil
	if !t.Stapling {
		return nil
	}
	if t.StaplingFile != "" {
		der, err := os.ReadFile(t.StaplingFile)
		if err != nil {
			return errAt(d, "BIO_new_file(\"%s\") failed (%v)", t.StaplingFile, err)
		}
		if _, err := ocsp.ParseResponse(der, nil); err != nil {
			return errAt(d, "d2i_OCSP_RESPONSE_bio(\"%s\") failed (%v)", t.StaplingFile, err)
		}
		for i := range t.Certs {
			t.Certs[i].OCSPStaple = der
		}
		return nil
	}
	t.Staples = make([]*Staple, len(t.Certs))
	for i := range t.Certs {
		cert := &t.Certs[i]
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return errAt(d, "cannot parse certificate %q: %v", t.CertFiles[i], err)
		}
		var issuer *x509.Certificate
		var chain []*x509.Certificate
		for _, raw := range cert.Certificate[1:] {
			if ic, err := x509.ParseCertificate(raw); err == nil {
				chain = append(chain, ic)
			}
		}
		for _, ic := range append(chain, t.TrustedCerts...) {
			if string(ic.RawSubject) == string(leaf.RawIssuer) && leaf.CheckSignatureFrom(ic) == nil {
				issuer = ic
				break
			}
		}
		warn := func(msg string) {
			t.Warnings = append(t.Warnings, msg)
			c.note(d, msg)
		}
		if issuer == nil {
			warn(fmt.Sprintf("\"ssl_stapling\" ignored, issuer certificate not found for certificate \"%s\"", t.CertFiles[i]))
			continue
		}
		url := t.StaplingResponder
		if url == "" && len(leaf.OCSPServer) > 0 {
			url = leaf.OCSPServer[0]
		}
		if url == "" {
			warn(fmt.Sprintf("\"ssl_stapling\" ignored, no OCSP responder URL in the certificate \"%s\"", t.CertFiles[i]))
			continue
		}
		t.Staples[i] = registerStaple(&Staple{File: t.CertFiles[i], URL: url, Leaf: leaf, Issuer: issuer, Chain: chain,
			Verify: t.StaplingVerify, Trust: t.Trust, Base: *cert})
	}
	return nil
}

// Staple is the OCSP stapling state of one certificate. It outlives
// reloads (the same certificate, responder and verify setting give the
// same Staple), so a reload neither drops the staple nor refetches it.
type Staple struct {
	File         string // certificate file, for messages
	URL          string // OCSP responder
	Leaf, Issuer *x509.Certificate
	Chain        []*x509.Certificate // the certificate's chain (for ssl_stapling_verify)
	Verify       bool                // ssl_stapling_verify
	Trust        *x509.CertPool      // trusted certificates for ssl_stapling_verify (nil: none)
	Base         tls.Certificate

	cur     atomic.Pointer[stapled]
	started atomic.Bool
}

type stapled struct {
	cert  *tls.Certificate
	until time.Time
}

var staples = struct {
	sync.Mutex
	m map[string]*Staple
}{m: map[string]*Staple{}}

func registerStaple(s *Staple) *Staple {
	sum := sha256.Sum256(s.Leaf.Raw)
	key := fmt.Sprintf("%x|%s|%v|%s", sum, s.URL, s.Verify, s.Issuer.Raw)
	staples.Lock()
	defer staples.Unlock()
	if old, ok := staples.m[key]; ok {
		return old
	}
	staples.m[key] = s
	return s
}

// Set installs a verified OCSP response, stapled until until.
func (s *Staple) Set(der []byte, until time.Time) {
	c := s.Base
	c.OCSPStaple = der
	s.cur.Store(&stapled{cert: &c, until: until})
}

// Cert returns the certificate with its current staple, nil when there is
// none or it has expired (nginx stops stapling past the response's
// nextUpdate).
func (s *Staple) Cert(now time.Time) *tls.Certificate {
	if st := s.cur.Load(); st != nil && now.Before(st.until) {
		return st.cert
	}
	return nil
}

// Start reports whether the caller is the first to start this staple's
// background fetching.
func (s *Staple) Start() bool { return s.started.CompareAndSwap(false, true) }

// buildTLSConfig is the per-server crypto/tls configuration: the TLS
// listener hands it to a connection once SNI has chosen the server.
func buildTLSConfig(t *TLSConf) *tls.Config {
	certs := t.Certs
	staples := t.Staples
	cfg := &tls.Config{
		MinVersion:             t.MinVersion,
		MaxVersion:             t.MaxVersion,
		CipherSuites:           t.Ciphers,
		CurvePreferences:       t.Curves,
		SessionTicketsDisabled: t.NoTickets,
		NextProtos:             []string{"http/1.1"}, // no HTTP/2 yet
	}
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		// Among a server's pairs, the first the client supports (ECDSA
		// or RSA), as OpenSSL picks among the loaded key types.
		pick := 0
		for i := range certs {
			if hello.SupportsCertificate(&certs[i]) == nil {
				pick = i
				break
			}
		}
		if staples != nil && staples[pick] != nil {
			if c := staples[pick].Cert(time.Now()); c != nil {
				return c, nil
			}
		}
		return &certs[pick], nil
	}
	if len(t.TicketKeys) > 0 {
		cfg.SetSessionTicketKeys(t.TicketKeys)
	}
	if t.TicketRedis != "" && !t.NoTickets {
		shared.tickets(t.TicketRedis).Register(cfg)
	}
	if !t.NoTickets {
		// Tickets carry their issue time so that ssl_session_timeout
		// bounds their age like nginx's session timeout (Go's own limit
		// is 7 days). A refused ticket means a full handshake.
		timeout := t.SessionTimeout
		cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
			ss.Extra = withIssued(ss.Extra, time.Now())
			return cfg.EncryptTicket(cs, ss)
		}
		cfg.UnwrapSession = func(id []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
			ss, err := cfg.DecryptTicket(id, cs)
			if err != nil || ss == nil {
				return nil, nil
			}
			if at, ok := ticketIssued(ss.Extra); !ok || time.Since(at) > timeout {
				return nil, nil
			}
			return ss, nil
		}
	}
	if t.Verify != VerifyOff {
		// nginx's verify callback accepts any chain and the request phase
		// answers 400 (ngx_http_process_request): the handshake must
		// complete whatever the client sends, so Go only requests the
		// certificate and the transport verifies it against Trust.
		cfg.ClientAuth = tls.RequestClientCert
		cfg.ClientCAs = t.ClientCAs
	}
	return cfg
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

package tlsterm

import (
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"time"

	"edgeproxy/snapshot"
)

// OpenSSL's X509_verify_cert_error_string texts (OpenSSL 3), which nginx
// puts after "FAILED:" in $ssl_client_verify.
const (
	errSelfSigned        = "self-signed certificate"                      // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
	errSelfSignedInChain = "self-signed certificate in certificate chain" // X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
	errIssuerLocally     = "unable to get local issuer certificate"       // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
	errIssuer            = "unable to get issuer certificate"             // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
	errLeafSignature     = "unable to verify the first certificate"       // X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
	errExpired           = "certificate has expired"                      // X509_V_ERR_CERT_HAS_EXPIRED
	errNotYetValid       = "certificate is not yet valid"                 // X509_V_ERR_CERT_NOT_YET_VALID
	errPurpose           = "unsuitable certificate purpose"               // X509_V_ERR_INVALID_PURPOSE
	errRevoked           = "certificate revoked"                          // X509_V_ERR_CERT_REVOKED
	errNoCRL             = "unable to get certificate CRL"                // X509_V_ERR_UNABLE_TO_GET_CRL
	errCRLExpired        = "CRL has expired"                              // X509_V_ERR_CRL_HAS_EXPIRED
	errCRLNotYetValid    = "CRL is not yet valid"                         // X509_V_ERR_CRL_NOT_YET_VALID
	errChainTooLong      = "certificate chain too long"                   // X509_V_ERR_CERT_CHAIN_TOO_LONG
	errSignature         = "certificate signature failure"                // X509_V_ERR_CERT_SIGNATURE_FAILURE
	errUnspecified       = "unspecified certificate verification error"   // X509_V_ERR_UNSPECIFIED
	errInvalidCA         = "invalid CA certificate"                       // X509_V_ERR_INVALID_CA
)

// optionalErr is ngx_ssl_verify_error_optional: the failures that
// "ssl_verify_client optional_no_ca" lets through to the application.
func optionalErr(reason string) bool {
	switch reason {
	case errSelfSigned, errSelfSignedInChain, errIssuer, errIssuerLocally, errLeafSignature:
		return true
	}
	return false
}

// verifyClient checks a client's chain the way OpenSSL does for nginx
// (SSL_VERIFY_PEER with a callback that lets the handshake finish): the
// certificates of ssl_client_certificate and ssl_trusted_certificate are
// the trust anchors, the chain may hold at most ssl_verify_depth
// intermediate certificates, the leaf must be usable for client
// authentication. The request phase answers 400 on failure.
func verifyClient(t *snapshot.TLSConf, peer []*x509.Certificate, now time.Time) *snapshot.ClientCert {
	cc := &snapshot.ClientCert{Verify: "NONE"}
	if len(peer) == 0 {
		return cc
	}
	leaf := peer[0]
	fillCertVars(cc, leaf)
	if reason := chainError(t, peer, now); reason != "" {
		cc.Verify = "FAILED:" + reason
		cc.Failed = true
		cc.OptionalErr = optionalErr(reason)
		return cc
	}
	cc.Verify = "SUCCESS"
	return cc
}

// chainError returns OpenSSL's reason for a chain that does not verify, ""
// when it does. OpenSSL reports the last error its verify callback saw:
// chain building (issuer, depth), then purpose, then signatures and
// validity periods, so a period error wins over an issuer error.
func chainError(t *snapshot.TLSConf, peer []*x509.Certificate, now time.Time) string {
	leaf := peer[0]
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	roots := t.Trust
	if roots == nil {
		roots = x509.NewCertPool()
	}
	// Chain building without the clock and the purpose: Go checks periods
	// during the build, OpenSSL after it.
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime: leaf.NotBefore.Add(time.Second)}
	var reason string
	chains, err := leaf.Verify(opts)
	if err != nil {
		var ua x509.UnknownAuthorityError
		var ci x509.CertificateInvalidError
		switch {
		case errors.As(err, &ua):
			reason = unknownIssuer(peer)
		case errors.As(err, &ci):
			switch ci.Reason {
			case x509.Expired:
				// CurrentTime fell outside an intermediate's period:
				// judge periods below.
			case x509.NotAuthorizedToSign, x509.CANotAuthorizedForThisName:
				reason = errInvalidCA
			case x509.TooManyIntermediates:
				reason = errChainTooLong
			default:
				reason = errUnspecified
			}
		default:
			reason = errSignature
		}
		if reason != "" && !optionalErr(reason) {
			return reason
		}
	}
	if chains != nil {
		// OpenSSL's depth counts the certificates below the trust anchor
		// that are not the leaf (ssl_verify_depth 1: leaf, one
		// intermediate, anchor). Past it, OpenSSL 3 stops building the
		// chain before the anchor and reports a missing issuer (checked
		// against nginx).
		best := chains[0]
		for _, ch := range chains[1:] {
			if len(ch) < len(best) {
				best = ch
			}
		}
		if len(best)-2 > t.VerifyDepth {
			reason = errIssuerLocally
		}
		// Purpose: the leaf must allow clientAuth (X509_PURPOSE_SSL_CLIENT).
		if !clientAuthOK(leaf) {
			reason = errPurpose
		}
		if t.CRLs != nil {
			if r := crlError(t.CRLs, best, now); r != "" {
				reason = r
			}
		}
	} else if t.CRLs != nil && (reason == errSelfSigned || reason == errSelfSignedInChain) {
		// OpenSSL checks revocation on the partial chain it built, up to
		// the untrusted self-signed top, whose CRL is then missing. (A
		// chain whose top has no issuer at all ends in "unable to verify
		// the first certificate" from the signature pass instead; checked
		// against nginx.)
		if r := crlError(t.CRLs, peer, now); r != "" {
			reason = r
		}
	}
	// Validity periods of the chain the client sent, leaf first (the last
	// error reported wins, as with nginx's accepting callback).
	for i := len(peer) - 1; i >= 0; i-- {
		c := peer[i]
		if now.Before(c.NotBefore) {
			reason = errNotYetValid
		} else if now.After(c.NotAfter) {
			reason = errExpired
		}
	}
	return reason
}

// crlError checks every certificate of the chain, the trust anchor
// included, against the CRL of its issuer (nginx sets
// X509_V_FLAG_CRL_CHECK_ALL with ssl_crl): a missing CRL, an expired one
// and a listed serial number are errors; the last one found wins.
func crlError(crls []*x509.RevocationList, chain []*x509.Certificate, now time.Time) string {
	var reason string
	for i, c := range chain {
		issuer := c
		if i+1 < len(chain) {
			issuer = chain[i+1]
		}
		var crl *x509.RevocationList
		for _, l := range crls {
			if string(l.RawIssuer) == string(c.RawIssuer) && l.CheckSignatureFrom(issuer) == nil {
				crl = l
				break
			}
		}
		switch {
		case crl == nil:
			reason = errNoCRL
			continue
		case now.Before(crl.ThisUpdate):
			reason = errCRLNotYetValid
		case !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate):
			reason = errCRLExpired
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber != nil && c.SerialNumber != nil && e.SerialNumber.Cmp(c.SerialNumber) == 0 {
				reason = errRevoked
			}
		}
	}
	return reason
}

// unknownIssuer tells OpenSSL's reasons apart when no trust anchor was
// found: a lone self-signed certificate, a chain ending in a self-signed
// one, a chain whose top's issuer is missing.
func unknownIssuer(peer []*x509.Certificate) string {
	top := peer[len(peer)-1]
	// The signature alone: CheckSignatureFrom would also want a CA.
	selfSigned := string(top.RawIssuer) == string(top.RawSubject) &&
		top.CheckSignature(top.SignatureAlgorithm, top.RawTBSCertificate, top.Signature) == nil
	switch {
	case selfSigned && len(peer) == 1:
		return errSelfSigned
	case selfSigned:
		return errSelfSignedInChain
	case len(peer) == 1:
		return errLeafSignature
	}
	return errIssuerLocally
}

func clientAuthOK(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// fillCertVars computes the $ssl_client_* strings of a certificate.
func fillCertVars(cc *snapshot.ClientCert, c *x509.Certificate) {
	cc.Present = true
	cc.SDN = formatDN(c.RawSubject)
	cc.IDN = formatDN(c.RawIssuer)
	// i2a_ASN1_INTEGER: two upper-case hex digits per byte of the
	// magnitude.
	if c.SerialNumber != nil {
		b := c.SerialNumber.Bytes()
		if len(b) == 0 {
			b = []byte{0}
		}
		s := strings.ToUpper(hex.EncodeToString(b))
		if c.SerialNumber.Sign() < 0 {
			s = "-" + s
		}
		cc.Serial = s
	}
	sum := sha1.Sum(c.Raw)
	cc.Fingerprint = hex.EncodeToString(sum[:])
	raw := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	cc.RawPEM = raw
	// ngx_ssl_get_certificate: the PEM without its last newline, each
	// following line indented by a tab (for a header value).
	cc.Cert = strings.ReplaceAll(strings.TrimSuffix(raw, "\n"), "\n", "\n\t")
	cc.EscapedPEM = escapeComponent(raw)
	// ASN1_TIME_print: "Nov  5 18:00:00 2026 GMT".
	cc.VStart = c.NotBefore.UTC().Format("Jan _2 15:04:05 2006 GMT")
	cc.VEnd = c.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT")
	cc.NotAfterSec = c.NotAfter.Unix()
}

// escapeComponent is ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT) as nginx
// 1.22 applies it to $ssl_client_escaped_cert.
func escapeComponent(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if escapeByte(ch) {
			b.WriteByte('%')
			b.WriteByte(hexd[ch>>4])
			b.WriteByte(hexd[ch&15])
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func escapeByte(ch byte) bool {
	if ch <= 0x20 || ch >= 0x7f {
		return true
	}
	return strings.IndexByte("!\"#$%&'()*+,/:;<=>?@[\\]^`{|}", ch) >= 0
}

// OpenSSL's short names (XN_FLAG_FN_SN) of the usual DN attributes.
var dnNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.4":                    "SN",
	"2.5.4.42":                   "GN",
	"2.5.4.12":                   "title",
	"2.5.4.43":                   "initials",
	"2.5.4.41":                   "name",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.17":                   "postalCode",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.13":                   "description",
	"2.5.4.65":                   "pseudonym",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
	"1.3.6.1.4.1.311.60.2.1.3":   "jurisdictionC",
	"1.3.6.1.4.1.311.60.2.1.2":   "jurisdictionST",
	"1.3.6.1.4.1.311.60.2.1.1":   "jurisdictionL",
	"2.5.4.97":                   "organizationIdentifier",
}

// formatDN prints a DER name like X509_NAME_print_ex(XN_FLAG_RFC2253),
// which nginx uses for $ssl_client_s_dn and $ssl_client_i_dn: the RDNs in
// reverse order separated by ",", multi-valued RDNs joined by "+", RFC
// 2253 escapes, bytes above 0x7f as \XX.
func formatDN(raw []byte) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &seq); err != nil || len(rest) > 0 {
		return ""
	}
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if i != len(seq)-1 {
			b.WriteByte(',')
		}
		for j, atv := range seq[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			oid := atv.Type.String()
			name, ok := dnNames[oid]
			s, isStr := atv.Value.(string)
			if !ok || !isStr {
				// XN_FLAG_DUMP_UNKNOWN_FIELDS: OID=#hex of the DER value.
				b.WriteString(oid)
				b.WriteString("=#")
				der, _ := asn1.Marshal(atv.Value)
				b.WriteString(strings.ToUpper(hex.EncodeToString(der)))
				continue
			}
			b.WriteString(name)
			b.WriteByte('=')
			escapeDNValue(&b, s)
		}
	}
	return b.String()
}

func escapeDNValue(b *strings.Builder, s string) {
	const hexd = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 0x80 || ch < 0x20 || ch == 0x7f:
			b.WriteByte('\\')
			b.WriteByte(hexd[ch>>4])
			b.WriteByte(hexd[ch&15])
		case strings.IndexByte(",+\"\\<>;", ch) >= 0,
			i == 0 && (ch == '#' || ch == ' '),
			i == len(s)-1 && ch == ' ':
			b.WriteByte('\\')
			b.WriteByte(ch)
		default:
			b.WriteByte(ch)
		}
	}
}

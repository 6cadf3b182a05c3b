package tlsterm

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"edgeproxy/snapshot"
)

// OCSP refresh periods of ngx_ssl_ocsp_handler: an hour after a good
// response (earlier if it expires sooner, never before five minutes), five
// minutes after a failure.
const (
	ocspRefresh      = time.Hour
	ocspRetry        = 5 * time.Minute
	ocspTimeout      = 30 * time.Second // ssl_stapling_responder timeouts (resolver_timeout, 30s)
	ocspLeeway       = 5 * time.Minute  // OCSP_check_validity's clock skew allowance
	ocspMaxBodyBytes = 1 << 20
)

// ocspClient talks to responders directly, as nginx does: no proxy from
// the environment.
var ocspClient = &http.Client{Timeout: ocspTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConns: 4, IdleConnTimeout: time.Minute}}

// startStapling starts the background fetching of every staple of t that
// is not fetched yet (the first handshake after a reload that added one
// starts it; nginx too fetches on demand).
func startStapling(t *snapshot.TLSConf, el *snapshot.ErrorLog) {
	for _, st := range t.Staples {
		if st != nil && st.Start() {
			go stapleLoop(st, el)
		}
	}
}

// stapleLoop keeps one certificate's OCSP response fresh for the life of
// the process.
func stapleLoop(st *snapshot.Staple, el *snapshot.ErrorLog) {
	for {
		next := ocspRetry
		der, resp, err := fetchOCSP(st)
		if err != nil {
			host, peer := responderHost(st.URL)
			errorLog(el, snapshot.LevelError, fmt.Sprintf("%v while requesting certificate status, responder: %s, peer: %s, certificate: \"%s\"", err, host, peer, st.File))
		} else {
			until := resp.NextUpdate
			if until.IsZero() {
				until = time.Now().Add(100 * 365 * 24 * time.Hour) // nginx: NGX_MAX_TIME_T_VALUE
			}
			st.Set(der, until)
			next = time.Until(until) - ocspLeeway
			if next > ocspRefresh {
				next = ocspRefresh
			}
			if next < ocspRetry {
				next = ocspRetry
			}
		}
		time.Sleep(next)
	}
}

// fetchOCSP asks the responder about the certificate with a GET request,
// as nginx does (ngx_ssl_ocsp_create_request), and checks the answer:
// signed by the issuer or its delegate, about this certificate, "good",
// current; with ssl_stapling_verify the issuer must also chain to
// ssl_trusted_certificate.
func fetchOCSP(st *snapshot.Staple) ([]byte, *ocsp.Response, error) {
	req, err := ocsp.CreateRequest(st.Leaf, st.Issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, nil, err
	}
	u := st.URL
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	u += url.PathEscape(base64.StdEncoding.EncodeToString(req))
	hr, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	hr.Header.Set("Accept", "application/ocsp-response")
	r, err := ocspClient.Do(hr)
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP responder request failed (%v)", err)
	}
	defer r.Body.Close()
	der, err := io.ReadAll(io.LimitReader(r.Body, ocspMaxBodyBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP responder read failed (%v)", err)
	}
	if r.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("OCSP responder sent invalid \"%d\" status", r.StatusCode)
	}
	resp, err := ocsp.ParseResponseForCert(der, st.Leaf, st.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP response not successful or not verified (%v)", err)
	}
	if st.Verify {
		if st.Trust == nil {
			return nil, nil, fmt.Errorf("OCSP_basic_verify() failed (no ssl_trusted_certificate)")
		}
		inter := x509.NewCertPool()
		for _, c := range st.Chain {
			inter.AddCert(c)
		}
		if _, err := st.Issuer.Verify(x509.VerifyOptions{Roots: st.Trust, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil &&
			!trustedItself(st.Issuer, st.Trust) {
			return nil, nil, fmt.Errorf("OCSP_basic_verify() failed (%v)", err)
		}
	}
	if resp.Status != ocsp.Good {
		return nil, nil, fmt.Errorf("certificate status \"%s\" in the OCSP response", ocspStatus(resp.Status))
	}
	now := time.Now()
	if resp.ThisUpdate.After(now.Add(ocspLeeway)) || (!resp.NextUpdate.IsZero() && resp.NextUpdate.Before(now.Add(-ocspLeeway))) {
		return nil, nil, fmt.Errorf("OCSP_check_validity() failed")
	}
	return der, resp, nil
}

// trustedItself reports whether c is one of the trusted certificates (a
// CA whose own certificate is in ssl_trusted_certificate).
func trustedItself(c *x509.Certificate, pool *x509.CertPool) bool {
	_, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

func ocspStatus(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}

// responderHost returns the responder's host name and address as nginx
// logs them ("responder: 127.0.0.1, peer: 127.0.0.1:8888").
func responderHost(u string) (string, string) {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return u, u
	}
	port := p.Port()
	if port == "" {
		port = "80"
	}
	return p.Hostname(), net.JoinHostPort(p.Hostname(), port)
}

var pid = strconv.Itoa(os.Getpid())

// configWarning writes one of nginx's configuration warnings: to stderr,
// where nginx prints them while reading its configuration, and to the
// error log when its level includes warnings.
func configWarning(el *snapshot.ErrorLog, msg string) {
	line := time.Now().Format("2006/01/02 15:04:05") + " [warn] " + pid + "#" + pid + ": " + msg + "\n"
	_, _ = os.Stderr.WriteString(line)
	if el != nil && el.File != nil && snapshot.LevelWarn <= el.Level {
		el.File.Write([]byte(line))
	}
}

// errorLog writes a line shaped like ngx_log_error's (without a
// connection: these come from background work) to el at level.
func errorLog(el *snapshot.ErrorLog, level int, msg string) {
	if el == nil || level > el.Level {
		return
	}
	var b bytes.Buffer
	b.WriteString(time.Now().Format("2006/01/02 15:04:05"))
	b.WriteString(" [")
	b.WriteString(snapshot.LevelName(level))
	b.WriteString("] ")
	b.WriteString(pid)
	b.WriteByte('#')
	b.WriteString(pid)
	b.WriteString(": ")
	b.WriteString(msg)
	b.WriteByte('\n')
	if el.File != nil {
		el.File.Write(b.Bytes())
		return
	}
	_, _ = os.Stderr.Write(b.Bytes())
}

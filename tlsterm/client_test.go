package tlsterm

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
)

func rawName(t testing.TB, n pkix.Name) []byte {
	t.Helper()
	b, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// formatDN prints names like X509_NAME_print_ex(XN_FLAG_RFC2253) (the
// e2e test compares real certificates with nginx; these pin the escapes).
func TestFormatDN(t *testing.T) {
	for _, tc := range []struct {
		name pkix.Name
		want string
	}{
		{pkix.Name{CommonName: "a"}, "CN=a"},
		{pkix.Name{CommonName: "a,b+c", Organization: []string{"O"}, Country: []string{"FR"}}, `CN=a\,b\+c,O=O,C=FR`},
		{pkix.Name{CommonName: " lead#", OrganizationalUnit: []string{"#x "}}, `CN=\ lead#,OU=\#x\ `},
		{pkix.Name{CommonName: "é<>;\"\\"}, `CN=\C3\A9\<\>\;\"\\`},
		{pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: "v"}}}, "1.2.3.4=#130176"},
	} {
		if got := formatDN(rawName(t, tc.name)); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := formatDN([]byte{0x30, 0x03, 0x01}); got != "" {
		t.Errorf("garbage: %q", got)
	}
}

func TestEscapeComponent(t *testing.T) {
	in := "-----BEGIN CERTIFICATE-----\nMIIB+/==\n"
	want := "-----BEGIN%20CERTIFICATE-----%0AMIIB%2B%2F%3D%3D%0A"
	if got := escapeComponent(in); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzFormatDN: any DER given as a name must format without panicking,
// and a name that parses must not print raw control bytes.
func FuzzFormatDN(f *testing.F) {
	f.Add(rawName(f, pkix.Name{CommonName: "a", Organization: []string{"b"}}))
	f.Add(rawName(f, pkix.Name{CommonName: "é\x01", ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "x@y"}}}))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := formatDN(b)
		if strings.ContainsAny(s, "\x00\n\r") {
			t.Errorf("control byte in %q", s)
		}
	})
}

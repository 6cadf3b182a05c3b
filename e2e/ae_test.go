package e2e

import (
	"strings"
	"testing"
)

// Accept-Encoding q-values as nginx reads them (ngx_http_gzip_quantity):
// "0", "1", a dot and up to three digits, at most 1; anything malformed or
// above 1 refuses gzip, like q=0.
func TestAcceptEncodingQDifferential(t *testing.T) {
	docs := t.TempDir()
	if err := writeFile(docs+"/big.txt", strings.Repeat("x", 2000)); err != nil {
		t.Fatal(err)
	}
	conf := `
worker_processes 1;
events { worker_connections 1024; }
http {
    gzip on; gzip_min_length 1; gzip_types text/plain; default_type text/plain;
    server { listen 127.0.0.1:{{.Port}}; root {{.Dir}}; }
}
`
	ngx, edge := pair(t, conf, docs)
	for _, ae := range []string{"gzip", "gzip;q=0", "gzip;q=0.0", "gzip;q=0.000", "gzip;q=0.0001", "gzip;q=0.0x",
		"gzip;q=0x", "gzip;q=1x", "gzip;q=abc", "gzip;q=", "gzip;q=1.5", "gzip;q=0.5", "gzip; q=0", "gzip;Q=0",
		"gzip;q=00", "gzip;q=0.", "gzip;q=1.0", "gzip;q=1.001", "gzip;x=1;q=0", "deflate, gzip;q=0.001"} {
		raw := get("/big.txt", "Accept-Encoding: "+ae+"\r\n")
		n, e := roundTrip(t, ngx.Addr, raw, false), roundTrip(t, edge.Addr, raw, false)
		// The compressed bytes differ by compressor; the decision must not.
		if n.Status != 200 || e.Status != 200 || n.Header.Get("Content-Encoding") != e.Header.Get("Content-Encoding") {
			t.Errorf("Accept-Encoding %q: nginx %d %q, edgeproxy %d %q", ae, n.Status, n.Header.Get("Content-Encoding"), e.Status, e.Header.Get("Content-Encoding"))
		}
	}
}

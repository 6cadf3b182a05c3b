package e2e

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const protoConf = `
worker_processes 1;
events { worker_connections 64; }
http {
    client_header_timeout 1s;
    keepalive_timeout 2s;
    client_max_body_size 10;
    server {
        listen 127.0.0.1:{{.Port}} default_server;
        server_name default.test;
        location / { return 200 "default $host\n"; }
        location /big { client_max_body_size 1k; return 200 "big ok\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port}};
        server_name example.com www.example.com;
        location / { return 200 "example $host\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port}};
        server_name *.wild.test;
        location / { return 200 "wild $host\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port}};
        server_name ~^(?<sub>[a-z]+)\.re\.test$;
        location / { return 200 "regex $sub\n"; }
    }
    server {
        listen 127.0.0.1:{{.Port}};
        server_name .dot.test;
        location / { return 200 "dot $host\n"; }
    }
}
`

func TestServerSelectionDifferential(t *testing.T) {
	ngx, edge := pair(t, protoConf, t.TempDir())
	var cases []dcase
	for _, h := range []string{"example.com", "www.example.com", "EXAMPLE.COM", "example.com:80", "a.wild.test", "wild.test",
		"x.re.test", "X.RE.TEST", "1.re.test", "dot.test", "a.b.dot.test", "unknown.test", "example.com."} {
		cases = append(cases, dcase{name: h, raw: "GET / HTTP/1.1\r\nHost: " + h + "\r\n\r\n"})
	}
	cases = append(cases, dcase{name: "http10-nohost", raw: "GET / HTTP/1.0\r\n\r\n"})
	cases = append(cases, dcase{name: "absolute-form", raw: "GET http://example.com/x HTTP/1.1\r\nHost: other\r\n\r\n"})
	differential(t, ngx, edge, cases)
}

func TestBadRequestsDifferential(t *testing.T) {
	ngx, edge := pair(t, protoConf, t.TempDir())
	long := strings.Repeat("a", 9000)
	differential(t, ngx, edge, []dcase{
		{name: "no-host-11", raw: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "two-hosts", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400},
		{name: "bad-version", raw: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505},
		{name: "long-uri", raw: "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", status: 414},
		{name: "long-header", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + long + "\r\n\r\n", status: 400},
		{name: "cl-and-te", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "bad-cl", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", status: 400},
		{name: "dup-cl", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", status: 400},
		{name: "unknown-te", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", status: 501},
		{name: "space-before-colon", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", status: 400},
		{name: "body-too-large", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890", status: 413},
		{name: "body-ok", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", status: 200},
		{name: "body-location-limit", raw: "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 1000), status: 200},
		{name: "chunked-body", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: 200},
		{name: "bad-chunk", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", status: 400},
		{name: "nul-in-uri", raw: "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
		{name: "traversal", raw: "GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
		{name: "encoded-traversal", raw: "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
		{name: "trace", raw: "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", status: 405},
		{name: "lowercase-method", raw: "get / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
		{name: "expect-100", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc", status: 100},
	})
}

// A client that sends nothing after connecting, or an incomplete head, is
// disconnected after client_header_timeout without a response (nginx logs 408
// and closes).
func TestHeaderTimeoutClosesSlowloris(t *testing.T) {
	edge := start(t, "edgeproxy", protoConf, t.TempDir())
	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	el := time.Since(start)
	if len(b) != 0 || el < 800*time.Millisecond || el > 3*time.Second {
		t.Fatalf("read %q (err %v) after %v; want a close without response after ~1s", b, err, el)
	}
	// The server keeps serving others.
	if r := roundTrip(t, edge.Addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false); r.Status != 200 {
		t.Fatalf("after slowloris: %+v", r)
	}
}

// An idle keep-alive connection is closed after keepalive_timeout.
func TestKeepaliveTimeout(t *testing.T) {
	edge := start(t, "edgeproxy", protoConf, t.TempDir())
	c, err := net.Dial("tcp", edge.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := newReader(c)
	r := readReply(c, br, false)
	if r.Status != 200 || r.Closed {
		t.Fatalf("first response: %+v", r)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(6 * time.Second))
	_, err = br.ReadByte()
	if el := time.Since(start); err != io.EOF || el < 1500*time.Millisecond || el > 4*time.Second {
		t.Fatalf("idle connection: err %v after %v; want EOF after ~2s", err, el)
	}
}

// Connections beyond worker_connections are refused without disturbing the
// established ones.
func TestWorkerConnectionsCap(t *testing.T) {
	// Long timeouts: no slot may free itself while the test fills them.
	conf := strings.NewReplacer("client_header_timeout 1s;", "client_header_timeout 60s;", "keepalive_timeout 2s;", "keepalive_timeout 60s;").Replace(protoConf)
	edge := start(t, "edgeproxy", conf, t.TempDir())
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 64; i++ {
		c, err := net.Dial("tcp", edge.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// A served request proves the connection holds a slot (the
		// server may accept later than the client's connect returns).
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(newReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp.Body.Close()
	}
	extra, err := net.Dial("tcp", edge.Addr)
	if err == nil {
		_ = extra.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(extra, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		b, _ := io.ReadAll(extra)
		extra.Close()
		if len(b) != 0 {
			t.Fatalf("connection 65 was served: %q", b)
		}
	}
	conns[0].Close()
	conns = conns[1:]
	time.Sleep(100 * time.Millisecond)
	if r := roundTrip(t, edge.Addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false); r.Status != 200 {
		t.Fatalf("after a slot freed: %+v", r)
	}
}

// `edgeproxy -t` words errors like `nginx -t`, with file:line.
func TestConfigTestMessages(t *testing.T) {
	ngxBin := nginxBinary(t)
	bin := edgeBinary(t)
	cases := []string{
		"events {} http { server { listen 80; foo bar; } }",
		"events {} http { alias /x; }",
		"events {} http { server { listen; } }",
		"events {} http { server { location / { root /a; root /b; } } }",
		"events {} http { server { listen 80; location / {",
	}
	for _, conf := range cases {
		dir := t.TempDir()
		p := dir + "/nginx.conf"
		if err := writeFile(p, conf); err != nil {
			t.Fatal(err)
		}
		nOut, _ := exec.Command(ngxBin, "-t", "-p", dir, "-c", p, "-g", "pid "+dir+"/n.pid; error_log stderr;").CombinedOutput()
		eOut, eErr := exec.Command(bin, "-t", "-p", dir, "-c", p).CombinedOutput()
		if eErr == nil {
			t.Errorf("%q: edgeproxy -t succeeded:\n%s", conf, eOut)
			continue
		}
		nMsg := emergLine(string(nOut))
		eMsg := emergLine(string(eOut))
		if nMsg == "" || nMsg != eMsg {
			t.Errorf("%q:\n nginx:     %q\n edgeproxy: %q", conf, nMsg, eMsg)
		}
	}
	// A valid config passes with nginx's wording.
	dir := t.TempDir()
	p := dir + "/nginx.conf"
	_ = writeFile(p, "events {} http { server { listen 127.0.0.1:1; location / { return 200; } } }")
	out, err := exec.Command(bin, "-t", "-c", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "syntax is ok") || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("valid config: %v\n%s", err, out)
	}
	// -T prints the effective config like nginx -T: each file with its header.
	_ = writeFile(filepath.Join(dir, "extra.conf"), "location /x { return 204; }\n")
	_ = writeFile(p, "events {} http { server { listen 127.0.0.1:1; include extra.conf; } }\n")
	out, err = exec.Command(bin, "-T", "-c", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "# configuration file "+p+":") || !strings.Contains(string(out), "# configuration file "+filepath.Join(dir, "extra.conf")+":") ||
		!strings.Contains(string(out), "location /x { return 204; }") {
		t.Fatalf("-T output: %v\n%s", err, out)
	}
	// An implemented-elsewhere directive is refused, never ignored.
	_ = writeFile(p, "events {} http { server { listen 127.0.0.1:1; location / { rewrite ^ /x; } } }")
	out, err = exec.Command(bin, "-t", "-c", p).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `"rewrite"`) || !strings.Contains(string(out), p+":1") {
		t.Fatalf("unsupported directive: %v\n%s", err, out)
	}
}

// emergLine extracts the message after "[emerg] " from nginx-style output.
func emergLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "[emerg] "); i >= 0 {
			return pidPrefix.ReplaceAllString(l[i+8:], "")
		}
	}
	return ""
}

var pidPrefix = regexp.MustCompile(`^[0-9]+#[0-9]+: `)

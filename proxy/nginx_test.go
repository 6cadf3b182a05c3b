package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgeproxy/upstream"
)

// The differential tests run real nginx 1.22 and this package in front of
// the same raw-TCP backend, and compare what the backend receives
// (request line and header list) and what the client receives (status
// line and header lines).

const nginxBin = "/usr/sbin/nginx"

// backendReq is one request as the backend saw it.
type backendReq struct {
	line    string
	headers []string // "Name: value" exactly as received
	body    string
}

// backend is a raw HTTP/1.x server recording every request head. A
// request whose path contains "/tricky" gets trickyResponse, others a small
// 200.
type backend struct {
	ln   net.Listener
	sock string // unix socket path serving the same handler
	reqs chan backendReq
	port int
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, reqs: make(chan backendReq, 64), port: ln.Addr().(*net.TCPAddr).Port}
	b.sock = filepath.Join(t.TempDir(), "app.sock")
	uln, err := net.Listen("unix", b.sock)
	if err != nil {
		t.Fatal(err)
	}
	// nginx's worker may run as another user.
	_ = os.Chmod(filepath.Dir(b.sock), 0o755)
	_ = os.Chmod(b.sock, 0o777)
	for _, l := range []net.Listener{ln, uln} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go b.serve(c)
			}
		}()
	}
	t.Cleanup(func() { ln.Close(); uln.Close() })
	return b
}

func (b *backend) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	r := backendReq{line: strings.TrimRight(line, "\r\n")}
	cl := 0
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		r.headers = append(r.headers, l)
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Content-Length") {
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, cl)
	if _, err := io.ReadFull(br, body); err != nil {
		return
	}
	r.body = string(body)
	b.reqs <- r
	if strings.Contains(r.line, "/tricky") {
		_, _ = io.WriteString(c, trickyResponse(b.port))
		return
	}
	_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

func (b *backend) next(t *testing.T) backendReq {
	t.Helper()
	select {
	case r := <-b.reqs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("backend received no request")
		return backendReq{}
	}
}

// trickyResponse is a Gunicorn-like response with every header class the
// proxy must filter, rewrite or keep.
func trickyResponse(bport int) string {
	return "HTTP/1.1 299 Fine Thanks\r\n" +
		"Server: gunicorn\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n" +
		"Connection: close, X-Hop\r\n" +
		"X-Hop: hop\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"X-Pad: avoid browser bug\r\n" +
		"X-Accel-Expires: 10\r\n" +
		"X-Accel-Buffering: yes\r\n" +
		"x-app-first: 1\r\n" +
		"Location: http://127.0.0.1:" + strconv.Itoa(bport) + "/app/x?y=1\r\n" +
		"Refresh: 5; URL=http://127.0.0.1:" + strconv.Itoa(bport) + "/app/r\r\n" +
		"TE: trailers\r\n" +
		"Upgrade: h2c\r\n" +
		"Proxy-Foo: bar\r\n" +
		"Last-Modified: Mon, 02 Jan 2006 15:04:05 GMT\r\n" +
		"ETag: \"abc\"\r\n" +
		"Vary: Cookie\r\n" +
		"X-Custom: c1\r\n" +
		"X-Custom: c2\r\n" +
		"Set-Cookie: a=1; Path=/\r\n" +
		"Set-Cookie: b=2\r\n" +
		"\r\n" +
		"5\r\nhello\r\n0\r\n\r\n"
}

// nginx runs nginx with the given http{} body on a free loopback port.
type nginx struct {
	port int
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startNginx(t *testing.T, httpBody string) *nginx {
	t.Helper()
	return startNginxHTTP(t, "", httpBody)
}

// startNginxHTTP is startNginx with extra http{}-level text (upstream
// blocks).
func startNginxHTTP(t *testing.T, httpLevel, httpBody string) *nginx {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/cb;
    proxy_temp_path %[1]s/pt;
    fastcgi_temp_path %[1]s/ft;
    uwsgi_temp_path %[1]s/ut;
    scgi_temp_path %[1]s/st;
%[4]s
    server {
        listen 127.0.0.1:%[2]d;
        server_name localhost;
%[3]s
    }
}
`, dir, port, httpBody, httpLevel)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "daemon off; master_process off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for i := 0; i < 100; i++ {
		select {
		case err := <-done:
			t.Fatalf("nginx exited: %v\n%s", err, stderr.String())
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return &nginx{port: port}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nginx did not start:\n%s", stderr.String())
	return nil
}

// roundTrip sends raw to nginx and returns the status line (after the
// protocol) and the header lines of the response.
func (n *nginx) roundTrip(t *testing.T, raw string) (status string, headers []string) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	_, status, _ = strings.Cut(strings.TrimRight(line, "\r\n"), " ")
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		headers = append(headers, l)
	}
	_, _ = io.Copy(io.Discard, br)
	return status, headers
}

// clientReq is a raw client request split the way the pipeline hands it
// over: $request_uri, $uri and $args are given by the test case (the
// pipeline's normalisation is not under test here).
type clientReq struct {
	method, requestURI string
	headers            [][2]string
	body               string
	uri, args          string
}

func (c clientReq) raw() string {
	var b strings.Builder
	b.WriteString(c.method + " " + c.requestURI + " HTTP/1.1\r\n")
	for _, h := range c.headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(c.body)
	return b.String()
}

func (c clientReq) header(name string) (string, bool) {
	var vals []string
	for _, h := range c.headers {
		if strings.EqualFold(h[0], name) {
			vals = append(vals, h[1])
		}
	}
	return strings.Join(vals, ", "), len(vals) > 0
}

// evalVar evaluates the few nginx variables the test configs use, as the
// pipeline would for a client on 127.0.0.1.
func evalVar(t *testing.T, s *Settings, c clientReq, tmpl string) string {
	t.Helper()
	remote := netip.MustParseAddr("127.0.0.1")
	switch tmpl {
	case "":
		return ""
	case "$host":
		h, _ := c.header("Host")
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			h = h[:i]
		}
		return strings.ToLower(h)
	case "$remote_addr":
		return string(AppendRemoteAddr(nil, remote))
	case "$proxy_add_x_forwarded_for":
		xff, _ := c.header("X-Forwarded-For")
		return string(AppendAddXForwardedFor(nil, []byte(xff), remote))
	case "[$proxy_port]":
		return "[" + s.ProxyPort() + "]"
	case "$scheme":
		return "http"
	case "$proxy_host":
		return s.ProxyHost()
	}
	if !strings.Contains(tmpl, "$") {
		return tmpl
	}
	t.Fatalf("test cannot evaluate %q", tmpl)
	return ""
}

// location is one test location: its nginx text and the equivalent Config.
type location struct {
	name     string // location name as in nginx, e.g. "/api/" or "= /api"
	pass     string
	directs  []string    // extra nginx directives
	sets     [][2]string // proxy_set_header name, template
	http11   bool
	redirect [][]string
	hide     []string
	passHdr  []string
	group    []string // servers of the upstream block named by pass
}

func (l location) nginx() string {
	var b strings.Builder
	fmt.Fprintf(&b, "        location %s {\n            proxy_pass %s;\n", l.name, l.pass)
	for _, s := range l.sets {
		fmt.Fprintf(&b, "            proxy_set_header %s %q;\n", s[0], s[1])
	}
	if l.http11 {
		b.WriteString("            proxy_http_version 1.1;\n")
	}
	for _, r := range l.redirect {
		fmt.Fprintf(&b, "            proxy_redirect %s;\n", strings.Join(r, " "))
	}
	for _, h := range l.hide {
		fmt.Fprintf(&b, "            proxy_hide_header %s;\n", h)
	}
	for _, h := range l.passHdr {
		fmt.Fprintf(&b, "            proxy_pass_header %s;\n", h)
	}
	for _, d := range l.directs {
		fmt.Fprintf(&b, "            %s;\n", d)
	}
	b.WriteString("        }\n")
	return b.String()
}

func (l location) settings(t *testing.T) *Settings {
	t.Helper()
	p, err := ParsePass(l.pass)
	if err != nil {
		t.Fatal(err)
	}
	var g *upstream.Group
	if l.group != nil {
		spec := upstream.GroupSpec{Name: p.Upstream()}
		for _, a := range l.group {
			spec.Servers = append(spec.Servers, upstream.ServerDefaults(a))
		}
		g, err = upstream.NewGroup(spec)
	} else {
		g, err = ImplicitGroup(p, Timeouts{Connect: 2 * time.Second, Send: 2 * time.Second, Read: 2 * time.Second})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	loc := strings.TrimPrefix(l.name, "= ")
	cfg := Config{Pass: p, Group: g, Location: loc, HTTP11: l.http11, HideHeaders: l.hide, PassHeaders: l.passHdr}
	for _, s := range l.sets {
		cfg.SetHeaders = append(cfg.SetHeaders, SetHeader{Name: s[0], Empty: s[1] == ""})
	}
	for _, d := range l.directs {
		switch d {
		case "proxy_pass_request_headers off":
			cfg.NoPassRequestHeaders = true
		case "proxy_pass_request_body off":
			cfg.NoPassRequestBody = true
		default:
			t.Fatalf("test cannot map %q", d)
		}
	}
	cfg.Redirect, err = ParseRedirect(l.redirect...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSettings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// job builds the Job the pipeline would hand over for c.
func (l location) job(t *testing.T, s *Settings, c clientReq) *Job {
	j := AcquireJob()
	j.Method = append(j.Method[:0], c.method...)
	j.RequestURI = append(j.RequestURI[:0], c.requestURI...)
	j.URI = append(j.URI[:0], c.uri...)
	j.Args = append(j.Args[:0], c.args...)
	for _, h := range c.headers {
		j.AddHeader([]byte(h[0]), []byte(h[1]))
	}
	if v, ok := c.header("Content-Length"); ok {
		j.ContentLength, _ = strconv.ParseInt(v, 10, 64)
	}
	j.Body = append(j.Body[:0], c.body...)
	j.ClientIP = netip.MustParseAddr("127.0.0.1")
	for _, sh := range l.sets {
		j.AddSetValue([]byte(evalVar(t, s, c, sh[1])))
	}
	return j
}

func TestNginxRequestHeaders(t *testing.T) {
	b := startBackend(t)
	bp := strconv.Itoa(b.port)
	base := "http://127.0.0.1:" + bp
	locs := []location{
		{name: "/d/", pass: base},
		{name: "/s/", pass: base, sets: [][2]string{
			{"Host", "$host"}, {"X-Real-IP", "$remote_addr"},
			{"X-Forwarded-For", "$proxy_add_x_forwarded_for"}, {"X-Forwarded-Proto", "$scheme"}}},
		{name: "/k/", pass: base, http11: true, sets: [][2]string{{"Connection", ""}}},
		{name: "/api/", pass: base + "/v1/"},
		{name: "= /api", pass: base + "/v1/"},
		{name: "/e/", pass: base, sets: [][2]string{{"x-empty", ""}, {"X-Proxy-Host", "$proxy_host"}, {"user-agent", "edge"}}},
		{name: "/g/", pass: "http://grp", group: []string{"127.0.0.1:" + bp}},
		{name: "/u/", pass: "http://unix:" + b.sock + ":/sock/"},
		{name: "/un/", pass: "http://unix:" + b.sock + ":", sets: [][2]string{{"Host", "$proxy_host"}, {"X-Port", "[$proxy_port]"}}},
		{name: "/b/", pass: base + "/", directs: []string{"proxy_pass_request_headers off", "proxy_pass_request_body off"}},
	}
	var conf strings.Builder
	for _, l := range locs {
		conf.WriteString(l.nginx())
	}
	n := startNginxHTTP(t, "upstream grp { server 127.0.0.1:"+bp+"; }", conf.String())
	host := [2]string{"Host", "127.0.0.1:" + strconv.Itoa(n.port)}
	std := [][2]string{host, {"User-Agent", "curl/8.0"}, {"accept", "*/*"}, {"Connection", "close"}}
	hop := [][2]string{host, {"connection", "keep-alive, Upgrade"}, {"Keep-Alive", "timeout=5"},
		{"TE", "trailers"}, {"Upgrade", "websocket"}, {"Expect", "100-continue"},
		{"X-Forwarded-For", "10.0.0.1"}, {"x-lower", "v"}, {"X-Dup", "1"}, {"X-Dup", "2"},
		{"Proxy-Connection", "keep-alive"}, {"Cookie", "a=1"}, {"cookie", "b=2"}, {"Content-Type", "text/plain"},
		{"Content-Length", "5"}, {"Connection", "close"}}
	cases := []struct {
		name string
		loc  location
		req  clientReq
	}{
		{"default", locs[0], clientReq{method: "GET", requestURI: "/d/x?a=1", uri: "/d/x", args: "a=1", headers: std}},
		{"default-hop", locs[0], clientReq{method: "POST", requestURI: "/d/p", uri: "/d/p", headers: hop, body: "hello"}},
		{"seed", locs[1], clientReq{method: "GET", requestURI: "/s/x", uri: "/s/x", headers: append([][2]string{{"X-Forwarded-For", "10.1.1.1"}}, std...)}},
		{"seed-hop", locs[1], clientReq{method: "POST", requestURI: "/s/p", uri: "/s/p", headers: hop, body: "hello"}},
		{"http11", locs[2], clientReq{method: "GET", requestURI: "/k/x", uri: "/k/x", headers: std}},
		{"http11-hop", locs[2], clientReq{method: "PUT", requestURI: "/k/p", uri: "/k/p", headers: hop, body: "hello"}},
		{"api-escape", locs[3], clientReq{method: "GET", requestURI: "/api/x%20y?q=1", uri: "/api/x y", args: "q=1", headers: std}},
		{"api-slash", locs[3], clientReq{method: "GET", requestURI: "/api/a%2Fb/%7E/ü", uri: "/api/a/b/~/ü", headers: std}},
		{"api-raw-utf8", locs[3], clientReq{method: "GET", requestURI: "/api/ü?x", uri: "/api/ü", args: "x", headers: std}},
		{"api-exact", locs[4], clientReq{method: "GET", requestURI: "/api?z", uri: "/api", args: "z", headers: std}},
		{"nouri-dots", locs[0], clientReq{method: "GET", requestURI: "//d/../d/x%2Fy?b", uri: "/d/x/y", args: "b", headers: std}},
		{"empty-and-ua", locs[5], clientReq{method: "GET", requestURI: "/e/", uri: "/e/", headers: append([][2]string{{"X-Empty", "client"}}, std...)}},
		{"upstream-name", locs[6], clientReq{method: "GET", requestURI: "/g/x", uri: "/g/x", headers: std}},
		{"unix-uri", locs[7], clientReq{method: "GET", requestURI: "/u/a%3Fb?c", uri: "/u/a?b", args: "c", headers: std}},
		{"unix-nouri", locs[8], clientReq{method: "GET", requestURI: "/un/x", uri: "/un/x", headers: std}},
		{"no-pass-headers-get", locs[9], clientReq{method: "GET", requestURI: "/b/x", uri: "/b/x", headers: std}},
		{"no-host", locs[0], clientReq{method: "GET", requestURI: "/d/h", uri: "/d/h", headers: [][2]string{{"Host", "Example.COM"}, {"Connection", "close"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n.roundTrip(t, tc.req.raw())
			want := b.next(t)

			s := tc.loc.settings(t)
			j := tc.loc.job(t, s, tc.req)
			defer ReleaseJob(j)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := Do(ctx, s, j); err != nil {
				t.Fatal(err)
			}
			got := b.next(t)
			t.Logf("backend saw %q %q", want.line, want.headers)
			if got.line != want.line {
				t.Errorf("request line:\n got %q\nwant %q", got.line, want.line)
			}
			if strings.Join(got.headers, "\n") != strings.Join(want.headers, "\n") {
				t.Errorf("headers:\n got %q\nwant %q", got.headers, want.headers)
			}
			if got.body != want.body {
				t.Errorf("body: got %q want %q", got.body, want.body)
			}
			if j.Status != 200 || string(j.ResponseBody()) != "ok" {
				t.Errorf("client got %d %q", j.Status, j.ResponseBody())
			}
		})
	}
}

func TestNginxResponseHeaders(t *testing.T) {
	b := startBackend(t)
	bp := strconv.Itoa(b.port)
	base := "http://127.0.0.1:" + bp
	locs := []location{
		{name: "/r/", pass: base + "/app/"},
		{name: "/app/", pass: base},
		{name: "/h/", pass: base + "/app/", hide: []string{"X-Custom", "etag"}, passHdr: []string{"X-Accel-Buffering", "X-Pad", "Date"},
			redirect: [][]string{{"http://127.0.0.1:" + bp + "/app/", "http://front/"}}},
		{name: "/o/", pass: base + "/app/", redirect: [][]string{{"off"}}},
	}
	var conf strings.Builder
	for _, l := range locs {
		conf.WriteString(l.nginx())
	}
	n := startNginx(t, conf.String())
	for _, tc := range []struct {
		name string
		loc  location
		uri  string
	}{
		{"default-redirect-uri", locs[0], "/r/tricky"},
		{"default-redirect-nouri", locs[1], "/app/tricky"},
		{"hide-pass-literal-redirect", locs[2], "/h/tricky"},
		{"redirect-off", locs[3], "/o/tricky"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hostHdr := "127.0.0.1:" + strconv.Itoa(n.port)
			req := clientReq{method: "GET", requestURI: tc.uri, uri: tc.uri,
				headers: [][2]string{{"Host", hostHdr}, {"Connection", "close"}}}
			wantStatus, wantAll := n.roundTrip(t, req.raw())
			b.next(t)
			var want []string
			for _, h := range wantAll {
				k, _, _ := strings.Cut(h, ":")
				switch strings.ToLower(k) {
				case "server", "connection", "content-length", "transfer-encoding", "keep-alive":
					continue
				case "date":
					if !containsString(tc.loc.passHdr, "Date") {
						continue
					}
				}
				want = append(want, h)
			}

			s := tc.loc.settings(t)
			j := tc.loc.job(t, s, req)
			defer ReleaseJob(j)
			if err := Do(context.Background(), s, j); err != nil {
				t.Fatal(err)
			}
			b.next(t)
			// The pipeline's part: absolute_redirect for a relative
			// rewritten Location ("http://" + $host + ":" + port).
			var got []string
			h := &j.Head
			if h.ContentType != nil {
				got = append(got, "Content-Type: "+string(h.ContentType))
			}
			if h.Location != nil {
				got = append(got, "Location: http://127.0.0.1:"+strconv.Itoa(n.port)+string(h.Location))
			}
			for _, l := range strings.Split(strings.TrimSuffix(string(h.Lines), "\r\n"), "\r\n") {
				if l != "" {
					got = append(got, l)
				}
			}
			t.Logf("nginx: %s %q", wantStatus, want)
			if string(h.StatusLine) != wantStatus {
				t.Errorf("status: got %q want %q", h.StatusLine, wantStatus)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("headers:\n got %q\nwant %q", got, want)
			}
			if string(j.ResponseBody()) != "hello" {
				t.Errorf("body %q", j.ResponseBody())
			}
			if string(h.AccelExpires) != "10" || string(h.AccelBuffering) != "yes" {
				t.Errorf("accel values: %q %q", h.AccelExpires, h.AccelBuffering)
			}
			if h.HasDate != containsString(tc.loc.passHdr, "Date") || h.HasServer {
				t.Errorf("HasDate %v HasServer %v", h.HasDate, h.HasServer)
			}
		})
	}
}

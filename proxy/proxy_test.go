package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"edgeproxy/upstream"
)

func TestParsePass(t *testing.T) {
	for _, tc := range []struct {
		arg                 string
		host, port, uri     string
		unix                bool
		proxyHost, proxyPrt string
		upstream            string
	}{
		{"http://127.0.0.1:8000", "127.0.0.1", "8000", "", false, "127.0.0.1:8000", "8000", "127.0.0.1"},
		{"http://127.0.0.1:8000/", "127.0.0.1", "8000", "/", false, "127.0.0.1:8000", "8000", "127.0.0.1"},
		{"http://127.0.0.1:8000/app/", "127.0.0.1", "8000", "/app/", false, "127.0.0.1:8000", "8000", "127.0.0.1"},
		{"http://127.0.0.1:80/x", "127.0.0.1", "80", "/x", false, "127.0.0.1", "80", "127.0.0.1"},
		{"http://backend", "backend", "", "", false, "backend", "80", "backend"},
		{"HTTP://backend?a", "backend", "", "?a", false, "backend", "80", "backend"},
		{"http://[::1]:8000/a", "[::1]", "8000", "/a", false, "[::1]:8000", "8000", "[::1]"},
		{"http://unix:/run/app.sock:", "/run/app.sock", "", "", true, "localhost", "", ""},
		{"http://unix:/run/app.sock", "/run/app.sock", "", "", true, "localhost", "", ""},
		{"http://unix:/run/app.sock:/uri", "/run/app.sock", "", "/uri", true, "localhost", "", ""},
	} {
		p, err := ParsePass(tc.arg)
		if err != nil {
			t.Errorf("%s: %v", tc.arg, err)
			continue
		}
		if p.Host != tc.host || p.Port != tc.port || p.URI != tc.uri || p.Unix != tc.unix || p.Upstream() != tc.upstream {
			t.Errorf("%s: got %+v", tc.arg, p)
		}
		s, err := NewSettings(Config{Pass: p, Location: "/"})
		if err != nil {
			t.Fatal(err)
		}
		if s.ProxyHost() != tc.proxyHost || s.ProxyPort() != tc.proxyPrt {
			t.Errorf("%s: $proxy_host %q $proxy_port %q", tc.arg, s.ProxyHost(), s.ProxyPort())
		}
	}
	for arg, want := range map[string]string{
		"https://127.0.0.1":     "not supported yet",
		"http://$host:8000":     "variables is not supported yet",
		"http://127.0.0.1$uri":  "variables is not supported yet",
		"ftp://x":               "invalid URL prefix",
		"127.0.0.1:8000":        "invalid URL prefix",
		"http://":               "no host",
		"http://h:/":            "invalid port",
		"http://h:99999":        "invalid port",
		"http://h:x1":           "invalid port",
		"http://unix::/x":       "no path",
		"http://[::1/x":         "invalid IPv6",
		"http://unix:/s.sock:/": "",
	} {
		_, err := ParsePass(arg)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", arg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", arg, err, want)
		}
	}
	if !errors.Is(func() error { _, err := ParsePass("https://x"); return err }(), ErrHTTPSUnsupported) {
		t.Error("https error is not ErrHTTPSUnsupported")
	}
	p, _ := ParsePass("http://grp:8080")
	if err := p.UpstreamPortError(); err == nil || !strings.Contains(err.Error(), `may not have port 8080`) {
		t.Errorf("UpstreamPortError: %v", err)
	}
}

func TestURIPartRefused(t *testing.T) {
	withURI, _ := ParsePass("http://127.0.0.1:8000/app/")
	noURI, _ := ParsePass("http://127.0.0.1:8000")
	for _, k := range []LocationKind{Regex, Named, NoName} {
		_, err := NewSettings(Config{Pass: withURI, Location: "~ ^/x", LocationKind: k})
		if err == nil || !strings.Contains(err.Error(), `"proxy_pass" cannot have URI part in location given by regular expression`) {
			t.Errorf("kind %d: %v", k, err)
		}
		s, err := NewSettings(Config{Pass: noURI, Location: "@app", LocationKind: k})
		if err != nil {
			t.Fatal(err)
		}
		// Without URI part the client URI goes unchanged; after a change
		// the whole $uri (escaped) goes.
		if got := string(s.AppendUpstreamURI(nil, []byte("/a%20b?x"), []byte("/a b"), []byte("x"), false)); got != "/a%20b?x" {
			t.Errorf("unchanged: %q", got)
		}
		if got := string(s.AppendUpstreamURI(nil, []byte("/orig"), []byte("/new ü"), []byte("x"), true)); got != "/new%20%C3%BC?x" {
			t.Errorf("changed: %q", got)
		}
	}
}

func TestUpstreamURI(t *testing.T) {
	p, _ := ParsePass("http://b/v1/")
	s, _ := NewSettings(Config{Pass: p, Location: "/api/"})
	for _, tc := range []struct {
		requestURI, uri, args string
		changed               bool
		want                  string
	}{
		{"/api/x", "/api/x", "", false, "/v1/x"},
		{"/api/x%20y?q=1", "/api/x y", "q=1", false, "/v1/x%20y?q=1"},
		// Not quoted and not internal: nginx copies the decoded $uri raw.
		{"/api/ü", "/api/ü", "", false, "/v1/ü"},
		// Internal redirect: escaped.
		{"/other", "/api/ü#?%", "a=b", true, "/v1/%C3%BC%23%3F%25?a=b"},
		// '%' only in the arguments does not make the URI quoted.
		{"/api/ü?a=%20", "/api/ü", "a=%20", false, "/v1/ü?a=%20"},
	} {
		got := string(s.AppendUpstreamURI(nil, []byte(tc.requestURI), []byte(tc.uri), []byte(tc.args), tc.changed))
		if got != tc.want {
			t.Errorf("%q: got %q want %q", tc.requestURI, got, tc.want)
		}
	}
	if got := string(s.AppendRewrittenURI(nil, []byte("/new path"), []byte("a=1"))); got != "/new%20path?a=1" {
		t.Errorf("rewrite break: %q", got)
	}
}

func TestParseRedirect(t *testing.T) {
	if _, err := ParseRedirect([]string{"default"}, []string{"off"}); err == nil {
		t.Error("off after default accepted")
	}
	if _, err := ParseRedirect([]string{"off"}, []string{"default"}); err == nil {
		t.Error("default after off accepted")
	}
	if _, err := ParseRedirect([]string{"~^http://x/(.*)", "/$1"}); err == nil || !strings.Contains(err.Error(), "not supported yet") {
		t.Errorf("regex: %v", err)
	}
	if _, err := ParseRedirect([]string{"http://x/", "$scheme://$host/"}); err == nil {
		t.Error("variables accepted")
	}
	if _, err := ParseRedirect([]string{"bogus"}); err == nil {
		t.Error("bogus accepted")
	}
	r, err := ParseRedirect([]string{"http://a/", "/"}, []string{"default"})
	if err != nil || len(r.Rules) != 2 || !r.Rules[1].Default {
		t.Errorf("%+v %v", r, err)
	}
}

// rawServer answers every connection with resp after reading the request
// head; a nil resp means accept and never answer.
func rawServer(t *testing.T, resp func(head string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					head.WriteString(l)
					if l == "\r\n" {
						break
					}
				}
				if resp == nil {
					_, _ = io.Copy(io.Discard, br)
					return
				}
				_, _ = io.WriteString(c, resp(head.String()))
			}()
		}
	}()
	return ln.Addr().String()
}

func newTestSettings(t *testing.T, pass string, tm Timeouts, nu *upstream.NextUpstream) *Settings {
	t.Helper()
	p, err := ParsePass(pass)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ImplicitGroup(p, tm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	s, err := NewSettings(Config{Pass: p, Group: g, Location: "/", NextUpstream: nu})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fillJob(j *Job, uri string) {
	j.Method = append(j.Method[:0], "GET"...)
	j.RequestURI = append(j.RequestURI[:0], uri...)
	j.URI = append(j.URI[:0], uri...)
	j.ClientIP = netip.MustParseAddr("192.0.2.1")
	j.AddHeader([]byte("Host"), []byte("example.com"))
	j.AddHeader([]byte("X-Req"), []byte("1"))
}

func TestDoErrors(t *testing.T) {
	// Connection refused → 502, $upstream_addr names the server.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	s := newTestSettings(t, "http://"+dead, Timeouts{Connect: time.Second}, nil)
	j := AcquireJob()
	fillJob(j, "/x")
	err := Do(context.Background(), s, j)
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.Status != 502 || j.Status != 502 {
		t.Fatalf("refused: err %v status %d", err, j.Status)
	}
	if got := string(j.Result.AppendUpstreamAddr(nil)); got != dead {
		t.Errorf("$upstream_addr %q", got)
	}
	ReleaseJob(j)

	// Read timeout → 504.
	addr := rawServer(t, nil)
	s = newTestSettings(t, "http://"+addr, Timeouts{Connect: time.Second, Read: 200 * time.Millisecond}, nil)
	j = AcquireJob()
	defer ReleaseJob(j)
	fillJob(j, "/slow")
	err = Do(context.Background(), s, j)
	if !errors.As(err, &ue) || ue.Status != 504 || j.Status != 504 {
		t.Fatalf("timeout: err %v status %d", err, j.Status)
	}
	if got := string(j.Result.AppendUpstreamStatus(nil)); got != "504" {
		t.Errorf("$upstream_status %q", got)
	}

	// No group bound.
	p, _ := ParsePass("http://x")
	s2, _ := NewSettings(Config{Pass: p, Location: "/"})
	if err := Do(context.Background(), s2, j); !errors.Is(err, ErrNoGroup) {
		t.Errorf("no group: %v", err)
	}
}

// TestDoResponse checks what the client gets for a response fasthttp
// would decorate: no Content-Type stays absent, a 204's headers, HEAD.
func TestDoResponse(t *testing.T) {
	addr := rawServer(t, func(head string) string {
		switch {
		case strings.HasPrefix(head, "HEAD "):
			return "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\r\n"
		case strings.Contains(head, " /nct "):
			return "HTTP/1.0 200\r\nX-A: 1\r\n\r\nbody until close"
		}
		return "HTTP/1.1 404 Not Here\r\ncontent-type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
	})
	s := newTestSettings(t, "http://"+addr, Timeouts{}, nil)
	j := AcquireJob()
	defer ReleaseJob(j)
	for _, tc := range []struct {
		method, uri, status, lines, body string
		ct                               string
		cl                               int
	}{
		{"GET", "/nct", "200", "X-A: 1\r\n", "body until close", "", 16},
		{"HEAD", "/h", "200 OK", "", "", `text/html; charset="utf-8"`, 1234},
		{"GET", "/x", "404 Not Here", "Content-Encoding: gzip\r\n", "{}", "application/json", 2},
	} {
		j.Reset()
		fillJob(j, tc.uri)
		j.Method = append(j.Method[:0], tc.method...)
		if err := Do(context.Background(), s, j); err != nil {
			t.Fatal(err)
		}
		h := &j.Head
		if string(h.StatusLine) != tc.status || string(h.Lines) != tc.lines || string(j.ResponseBody()) != tc.body ||
			string(h.ContentType) != tc.ct || (h.ContentType == nil) != (tc.ct == "") || h.ContentLength != tc.cl {
			t.Errorf("%s %s: status %q ct %q cl %d lines %q body %q", tc.method, tc.uri, h.StatusLine, h.ContentType, h.ContentLength, h.Lines, j.ResponseBody())
		}
		if got := string(s.AppendResponseHeaders(nil, j.Response())); got != strings.TrimSuffix("Content-Type: "+tc.ct+"\r\n", "Content-Type: \r\n")+tc.lines {
			t.Errorf("AppendResponseHeaders %q", got)
		}
	}
}

// TestRequestNoFasthttpExtras checks that fasthttp adds no User-Agent,
// Content-Type or normalised names to what the backend receives.
func TestRequestNoFasthttpExtras(t *testing.T) {
	heads := make(chan string, 4)
	addr := rawServer(t, func(head string) string {
		heads <- head
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	})
	s := newTestSettings(t, "http://"+addr, Timeouts{}, nil)
	j := AcquireJob()
	defer ReleaseJob(j)
	j.Method = append(j.Method[:0], "POST"...)
	j.RequestURI = append(j.RequestURI[:0], "/p"...)
	j.URI = append(j.URI[:0], "/p"...)
	j.AddHeader([]byte("x-lower-case"), []byte("v"))
	j.Body = append(j.Body[:0], "abc"...)
	j.ContentLength = 3
	if err := Do(context.Background(), s, j); err != nil {
		t.Fatal(err)
	}
	want := "POST /p HTTP/1.0\r\nHost: " + addr + "\r\nConnection: close\r\nContent-Length: 3\r\nx-lower-case: v\r\n\r\n"
	if got := <-heads; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestAllocs: composing the request and the response does not allocate
// once the pooled buffers have grown.
func TestAllocs(t *testing.T) {
	p, _ := ParsePass("http://127.0.0.1:8000/app/")
	s, err := NewSettings(Config{Pass: p, Location: "/api/", SetHeaders: []SetHeader{{Name: "X-Real-IP"}, {Name: "X-Forwarded-For"}}})
	if err != nil {
		t.Fatal(err)
	}
	j := AcquireJob()
	defer ReleaseJob(j)
	fillJob(j, "/api/x%20y")
	j.URI = append(j.URI[:0], "/api/x y"...)
	j.AddSetValue([]byte("192.0.2.1"))
	j.AddSetValue(AppendAddXForwardedFor(nil, []byte("10.0.0.1"), j.ClientIP))
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.Header.SetNoDefaultContentType(true)
	raw := "HTTP/1.1 302 Found\r\nServer: g\r\nContent-Type: text/html\r\nContent-Length: 0\r\nLocation: http://127.0.0.1:8000/app/x\r\nSet-Cookie: a=1\r\nVary: Cookie\r\n\r\n"
	if err := resp.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	req := j.Request()
	var h ResponseHead
	var xff []byte
	run := func() {
		s.BuildRequest(req, j)
		s.ComposeResponse(resp, &h)
		xff = AppendAddXForwardedFor(xff[:0], []byte("10.0.0.1"), j.ClientIP)
	}
	run()
	if got := string(h.Location); got != "/api/x" {
		t.Errorf("Location %q", got)
	}
	if got := string(req.Header.Header()); !strings.HasPrefix(got, "GET http://u/app/x%20y HTTP/1.0\r\nX-Real-IP: 192.0.2.1\r\nX-Forwarded-For: 10.0.0.1, 192.0.2.1\r\nHost: 127.0.0.1:8000\r\n") {
		t.Errorf("request head %q", got)
	}
	if n := testing.AllocsPerRun(100, run); n != 0 && !raceEnabled {
		t.Errorf("%v allocations per request composition", n)
	}
}

// TestDoAllocs reports allocations of a whole Do over a keepalive
// connection (dialing excluded). The 4 left are fasthttp's: RoundTrip
// makes three closures and a clientStreamBody for every streamed response
// body (Do always streams, to buffer or relay the body itself).
func TestDoAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	g, err := upstream.NewGroup(upstream.GroupSpec{Name: "app", Keepalive: 4, Servers: []upstream.ServerSpec{upstream.ServerDefaults(ln.Addr().String())}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	p, _ := ParsePass("http://app")
	s, _ := NewSettings(Config{Pass: p, Group: g, Location: "/", HTTP11: true, SetHeaders: []SetHeader{{Name: "Connection", Empty: true}}})
	ctx := context.Background()
	run := func() {
		j := AcquireJob()
		fillJob(j, "/x?y=1")
		if err := Do(ctx, s, j); err != nil || string(j.ResponseBody()) != "ok" {
			t.Fatalf("%v %q", err, j.ResponseBody())
		}
		ReleaseJob(j)
	}
	run()
	n := testing.AllocsPerRun(200, run)
	t.Logf("allocations per Do (keepalive upstream): %v", n)
	if n > 4 && !raceEnabled {
		t.Errorf("%v allocations per Do", n)
	}
}

package http1

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

const browserReq = "GET /static/app.js?v=3&lang=en HTTP/1.1\r\n" +
	"Host: www.Example.com:8443\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Cookie: session=abc123; theme=dark\r\n" +
	"Sec-Fetch-Dest: script\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

func mustParse(t *testing.T, raw string) *Request {
	t.Helper()
	var r Request
	n, err := r.Parse([]byte(raw), nil)
	if err != nil {
		t.Fatalf("Parse(%q): %v", raw, err)
	}
	if n != len(raw) {
		t.Fatalf("Parse(%q) = %d, want %d", raw, n, len(raw))
	}
	return &r
}

func TestBrowserRequest(t *testing.T) {
	r := mustParse(t, browserReq)
	check := func(what string, got []byte, want string) {
		t.Helper()
		if string(got) != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	check("Method", r.Method(), "GET")
	if r.MethodID() != MethodGET {
		t.Errorf("MethodID = %v", r.MethodID())
	}
	check("URI", r.URI(), "/static/app.js?v=3&lang=en")
	check("Path", r.Path(), "/static/app.js")
	check("Args", r.Args(), "v=3&lang=en")
	v, ok := r.Arg([]byte("LANG"))
	check("Arg(LANG)", v, "en")
	if !ok {
		t.Error("Arg(LANG) not found")
	}
	if _, ok := r.Arg([]byte("x")); ok {
		t.Error("Arg(x) found")
	}
	check("Host", r.Host(), "www.example.com")
	check("HostPort", r.HostPort(), "8443")
	check("Header(cookie)", r.Header([]byte("cookie")), "session=abc123; theme=dark")
	if r.Header([]byte("x-none")) != nil {
		t.Error("missing header not nil")
	}
	if maj, min := r.Proto(); maj != 1 || min != 1 {
		t.Errorf("Proto = %d.%d", maj, min)
	}
	if r.NumHeaders() != 10 {
		t.Errorf("NumHeaders = %d", r.NumHeaders())
	}
	n, v2 := r.HeaderAt(9)
	check("HeaderAt(9) name", n, "Connection")
	check("HeaderAt(9) value", v2, "keep-alive")
	var names []string
	r.VisitHeaders(func(name, value []byte) bool { names = append(names, string(name)); return len(names) < 3 })
	if strings.Join(names, ",") != "Host,User-Agent,Accept" {
		t.Errorf("VisitHeaders = %v", names)
	}
	if r.ContentLength() != -1 || r.Chunked() || !r.KeepAlive() || r.Expect100() || r.Upgrade() != nil || r.PathChanged() {
		t.Error("body/connection flags wrong")
	}
	check("HeadBytes", r.HeadBytes(), browserReq)
}

func TestRebase(t *testing.T) {
	buf := []byte(browserReq + "trailing body")
	var r Request
	if _, err := r.Parse(buf, nil); err != nil {
		t.Fatal(err)
	}
	moved := append([]byte(nil), buf...)
	for i := range buf { // the borrowed bytes are gone
		buf[i] = 'X'
	}
	r.Rebase(moved)
	if string(r.URI()) != "/static/app.js?v=3&lang=en" || string(r.Host()) != "www.example.com" ||
		string(r.Header([]byte("Accept"))) != "*/*" || string(r.Method()) != "GET" {
		t.Errorf("after Rebase: %q %q", r.URI(), r.Host())
	}
}

func TestIncrementalParse(t *testing.T) {
	raw := []byte(browserReq + "GET /next HTTP/1.1\r\n")
	var r Request
	// Feed one byte more each time, like slow reads; the buffer is copied
	// each time so nothing may hold on to old addresses.
	for i := 1; i < len(browserReq); i++ {
		n, err := r.Parse(append([]byte(nil), raw[:i]...), nil)
		if err != ErrNeedMore || n != 0 {
			t.Fatalf("prefix %d: %d, %v", i, n, err)
		}
	}
	n, err := r.Parse(raw, nil)
	if err != nil || n != len(browserReq) {
		t.Fatalf("whole: %d %v", n, err)
	}
	if string(r.Path()) != "/static/app.js" || r.NumHeaders() != 10 {
		t.Errorf("incremental result differs: %q %d", r.Path(), r.NumHeaders())
	}
	// The next call starts the pipelined request.
	if _, err := r.Parse(raw[n:], nil); err != ErrNeedMore {
		t.Errorf("pipelined: %v", err)
	}
}

func TestKeepAliveAndExpect(t *testing.T) {
	cases := []struct {
		raw       string
		keep, exp bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, Close\r\n\r\n", false, false},
		{"GET / HTTP/1.0\r\n\r\n", false, false},
		{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n", true, true},
		{"PUT / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", false, false},
	}
	for _, c := range cases {
		r := mustParse(t, c.raw)
		if r.KeepAlive() != c.keep || r.Expect100() != c.exp {
			t.Errorf("%q: keepalive %v expect %v", c.raw, r.KeepAlive(), r.Expect100())
		}
	}
	r := mustParse(t, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if string(r.Upgrade()) != "websocket" {
		t.Errorf("Upgrade = %q", r.Upgrade())
	}
	r = mustParse(t, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n\r\n")
	if r.ContentLength() != 12 || r.MethodID() != MethodPOST {
		t.Errorf("ContentLength = %d", r.ContentLength())
	}
}

func TestPathNormalisation(t *testing.T) {
	cases := []struct{ uri, path string }{
		{"/a%20b", "/a b"},
		{"/a//b///c", "/a/b/c"},
		{"/a/./b/.", "/a/b/"},
		{"/a/b/../../c", "/c"},
		{"/%2e%2E/", ""},     // above root
		{"/a/%2F../b", "/b"}, // the decoded slash is merged, then ".." pops "a"
		{"/a%3F?b", "/a?"},
	}
	for _, c := range cases {
		var r Request
		_, err := r.Parse([]byte("GET "+c.uri+" HTTP/1.1\r\nHost: a\r\n\r\n"), nil)
		if c.path == "" {
			if err != ErrInvalidPath {
				t.Errorf("%s: err %v, want ErrInvalidPath", c.uri, err)
			}
			continue
		}
		if err != nil || string(r.Path()) != c.path || !r.PathChanged() {
			t.Errorf("%s: %q %v changed=%v", c.uri, r.Path(), err, r.PathChanged())
		}
	}
}

func TestLimitsOptions(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\nX_Real: 1\r\nX@y: 2\r\n\r\n"
	r := mustParse(t, raw)
	if r.NumHeaders() != 1 {
		t.Errorf("invalid headers kept by default: %d", r.NumHeaders())
	}
	var r2 Request
	if _, err := r2.Parse([]byte(raw), &Limits{UnderscoresInHeaders: true}); err != nil || string(r2.Header([]byte("x_real"))) != "1" || r2.NumHeaders() != 2 {
		t.Errorf("underscores_in_headers on: %v %d", err, r2.NumHeaders())
	}
	var r3 Request
	if _, err := r3.Parse([]byte(raw), &Limits{KeepInvalidHeaders: true}); err != nil || r3.NumHeaders() != 3 {
		t.Errorf("ignore_invalid_headers off: %v %d", err, r3.NumHeaders())
	}
	small := &Limits{HeaderBufferSize: 64, LargeBufferSize: 128, LargeBuffers: 2}
	var r4 Request
	if _, err := r4.Parse([]byte("GET /"+strings.Repeat("a", 200)+" HTTP/1.1\r\n"), small); err != ErrURITooLong {
		t.Errorf("small limits: %v", err)
	}
	// An endless header line is refused before its end arrives.
	var r5 Request
	if _, err := r5.Parse([]byte("GET / HTTP/1.1\r\nX: "+strings.Repeat("a", 9000)), nil); err != ErrHeaderTooLarge {
		t.Errorf("endless header: %v", err)
	}
	if ErrHeaderTooLarge.Status != 400 || ErrHeaderTooLarge.Page != 494 {
		t.Error("ErrHeaderTooLarge must be sent as 400 with the 494 page")
	}
}

func TestChunkedDecoder(t *testing.T) {
	enc := "5;name=val\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\nNEXT"
	for split := 1; split <= len(enc); split++ {
		var d ChunkedDecoder
		var got []byte
		pending := []byte{}
		in := []byte(enc)
		done := false
		for off := 0; !done; {
			end := off + split
			if end > len(in) {
				end = len(in)
			}
			pending = append(pending, in[off:end]...)
			off = end
			for {
				c, data, fin, err := d.Decode(pending)
				if err != nil {
					t.Fatalf("split %d: %v", split, err)
				}
				got = append(got, data...)
				pending = pending[c:]
				if fin {
					done = true
					break
				}
				if c == 0 || len(pending) == 0 {
					break
				}
			}
			if off == len(in) && !done {
				t.Fatalf("split %d: not done", split)
			}
		}
		if string(got) != "helloabcdefghijklmnopqrstuvwxyz" || !strings.HasPrefix("NEXT", string(pending)) {
			t.Fatalf("split %d: %q rest %q", split, got, pending)
		}
	}
	for _, bad := range []string{"0x5\r\n", "5\nhello", "-1\r\n", "fffffffffffffffff\r\n", "5\r\nhelloX", "5\r\nhello\r\n0\r\n\n", "\r\n", "5\x00\r\n"} {
		var d ChunkedDecoder
		in := []byte(bad)
		var err error
		for i := 0; i < 10 && err == nil && len(in) > 0; i++ {
			var c int
			c, _, _, err = d.Decode(in)
			in = in[c:]
		}
		if err != ErrInvalidChunk {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestStatusLines(t *testing.T) {
	for code, want := range map[int]string{
		200: "HTTP/1.1 200 OK\r\n", 302: "HTTP/1.1 302 Moved Temporarily\r\n",
		494: "HTTP/1.1 400 Bad Request\r\n", 503: "HTTP/1.1 503 Service Temporarily Unavailable\r\n",
		299: "HTTP/1.1 299 \r\n",
	} {
		if got := string(AppendStatusLine(nil, code)); got != want {
			t.Errorf("%d: %q", code, got)
		}
	}
	if StatusText(404) != "Not Found" || StatusText(494) != "Bad Request" {
		t.Error("StatusText")
	}
}

// TestStatusLinesNginx compares status lines with what nginx 1.22 sends
// for "return CODE" (captured in testdata with the error pages).
func TestErrorPagesGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/nginx_error_pages.json")
	if err != nil {
		t.Fatal(err)
	}
	var pages map[string]string
	if err := json.Unmarshal(data, &pages); err != nil {
		t.Fatal(err)
	}
	for code := 100; code < 600; code++ {
		want, has := pages[itoa(code)]
		got := ErrorPageBody(code, false)
		if !has {
			if got != nil && code != 408 {
				t.Errorf("%d: we have a page, nginx sends none", code)
			}
			continue
		}
		want = strings.Replace(want, "<hr><center>nginx</center>", "<hr><center>edgeproxy</center>", 1)
		if string(got) != want {
			t.Errorf("%d:\n got %q\nwant %q", code, got, want)
		}
		tok := string(ErrorPageBody(code, true))
		if !strings.Contains(tok, "<hr><center>"+ServerVersion+"</center>") {
			t.Errorf("%d: server_tokens page %q", code, tok)
		}
	}
}

// TestErrorPagesLiveNginx fetches a few pages from the running nginx.
func TestErrorPagesLiveNginx(t *testing.T) {
	startNginx(t)
	// A 400 and a 414 and a 494 that nginx generates itself.
	for raw, code := range map[string]int{
		"GET / HTTP/1.1\r\n\r\n": 400,
		"GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n":        414,
		"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n": 494,
		"GET / HTTP/2.0\r\nHost: a\r\n\r\n":                                         505,
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n":             501,
	} {
		out := ngxRoundTrip(t, ngxAddr, []byte(raw))
		head, body, _ := bytes.Cut(out, []byte("\r\n\r\n"))
		line, _, _ := bytes.Cut(head, []byte("\r\n"))
		want := bytes.Replace(body, []byte("<center>nginx</center>"), []byte("<center>edgeproxy</center>"), 1)
		if got := ErrorPageBody(code, false); !bytes.Equal(got, want) {
			t.Errorf("%d: got %q want %q", code, got, want)
		}
		if got := AppendStatusLine(nil, code); string(got) != string(line)+"\r\n" {
			t.Errorf("%d: status line %q, nginx %q", code, got, line)
		}
	}
}

func TestDate(t *testing.T) {
	d := DateHeader()
	p, err := time.Parse(TimeFormat, string(d))
	if err != nil {
		t.Fatalf("DateHeader %q: %v", d, err)
	}
	if diff := time.Since(p); diff < -time.Second || diff > 2*time.Second {
		t.Errorf("DateHeader %q is %v off", d, diff)
	}
	if got := string(AppendHTTPDate(nil, time.Date(1994, 11, 6, 8, 49, 37, 0, time.FixedZone("x", 3600)))); got != "Sun, 06 Nov 1994 07:49:37 GMT" {
		t.Errorf("AppendHTTPDate = %q", got)
	}
}

func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	var r Request
	browser := []byte(browserReq)
	pct := []byte("GET /caf%C3%A9/a%2Fb/./c/../d%20e?q=%41 HTTP/1.1\r\nHost: Example.COM\r\nAccept: */*\r\n\r\n")
	// A fixed order: r must end up holding the percent request.
	for _, tc := range []struct {
		name string
		buf  []byte
	}{{"browser", browser}, {"percent", pct}} {
		name, buf := tc.name, tc.buf
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := r.Parse(buf, nil); err != nil {
				t.Fatal(err)
			}
			_ = r.Path()
			_ = r.Host()
			_ = r.Header([]byte("accept"))
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Parse", name, allocs)
		}
	}
	if string(r.Path()) != "/café/a/b/d e" || string(r.Host()) != "example.com" {
		t.Errorf("percent request: %q %q", r.Path(), r.Host())
	}
	body := []byte("5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n")
	allocs := testing.AllocsPerRun(200, func() {
		var d ChunkedDecoder
		in := body
		for {
			c, _, done, err := d.Decode(in)
			if err != nil {
				t.Fatal(err)
			}
			in = in[c:]
			if done {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("chunked: %v allocs", allocs)
	}
	DateHeader()
	if a := testing.AllocsPerRun(100, func() { _ = DateHeader() }); a != 0 {
		t.Errorf("DateHeader: %v allocs", a)
	}
	dst := make([]byte, 0, 128)
	if a := testing.AllocsPerRun(100, func() {
		dst = AppendStatusLine(dst[:0], 404)
		dst = AppendHTTPDate(dst, time.Unix(0, 0))
	}); a != 0 {
		t.Errorf("AppendStatusLine/AppendHTTPDate: %v allocs", a)
	}
}

func BenchmarkParseBrowser(b *testing.B) {
	buf := []byte(browserReq)
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := r.Parse(buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePercentPath(b *testing.B) {
	buf := []byte("GET /caf%C3%A9/a%2Fb/./c/../d%20e?q=%41 HTTP/1.1\r\nHost: Example.COM\r\nAccept: */*\r\n\r\n")
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := r.Parse(buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunked(b *testing.B) {
	body := []byte(strings.Repeat("400\r\n"+strings.Repeat("x", 1024)+"\r\n", 16) + "0\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var d ChunkedDecoder
		in := body
		for {
			c, _, done, err := d.Decode(in)
			if err != nil {
				b.Fatal(err)
			}
			in = in[c:]
			if done {
				break
			}
		}
	}
}

func BenchmarkDateHeader(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = DateHeader()
	}
}

package http1

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// ourStatus is the status edgeproxy would answer raw with: the parse
// error's Status, else the chunked body's verdict, else 200.
func ourStatus(raw []byte) int {
	var r Request
	n, err := r.Parse(raw, nil)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e.Status
		}
		return -1 // ErrNeedMore
	}
	if r.Chunked() {
		var d ChunkedDecoder
		body := raw[n:]
		for {
			c, _, done, err := d.Decode(body)
			if err != nil {
				return err.(*Error).Status
			}
			if done {
				break
			}
			if c == 0 {
				return -1
			}
			body = body[c:]
		}
	}
	return 200
}

const h11 = "Host: a\r\n"

type diffCase struct {
	name   string
	raw    string
	nginx  int // status nginx 1.22.1 answers (0 = HTTP/0.9 reply, no status line)
	ours   int
	reason string // why ours differs on purpose
}

var diffCases = []diffCase{
	{"basic", "GET / HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"percent 00", "GET /a%00b HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"percent 2F", "GET /a%2Fb HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"encoded dotdot above root", "GET /a/%2e%2e/%2e%2e/b HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"bad escape", "GET /a%zz HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"bare percent at end", "GET /a% HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"percent u", "GET /%u0041 HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"backslash", "GET /a\\b HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"dotdot above root", "GET /../a HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"dotdot twice", "GET /a/../../b HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"fragment", "GET /a#b HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"absolute-form no Host", "GET http://h/p HTTP/1.1\r\n\r\n", 400, 400, ""},
	{"absolute-form", "GET http://h/p HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"absolute-form bad host", "GET http://h_x/ HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"asterisk", "OPTIONS * HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"authority-form CONNECT", "CONNECT a:443 HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"CONNECT origin-form", "CONNECT / HTTP/1.1\r\n" + h11 + "\r\n", 405, 405, ""},
	{"TRACE", "TRACE / HTTP/1.1\r\n" + h11 + "\r\n", 405, 405, ""},
	{"TRACE without Host", "TRACE / HTTP/1.1\r\n\r\n", 400, 400, ""},
	{"HTTP/0.9", "GET /x\r\n", 0, 400, "HTTP/0.9 has no status line or headers; refused on purpose"},
	{"HTTP/0.9 explicit", "GET / HTTP/0.9\r\n" + h11 + "\r\n", 400, 400, ""},
	{"HTTP/2.0", "GET / HTTP/2.0\r\n" + h11 + "\r\n", 505, 505, ""},
	{"HTTP/1000.0", "GET / HTTP/1000.0\r\n" + h11 + "\r\n", 505, 505, ""},
	{"HTTP/1.1x", "GET / HTTP/1.1x\r\n" + h11 + "\r\n", 400, 400, ""},
	{"HTTP/1.2", "GET / HTTP/1.2\r\n" + h11 + "\r\n", 200, 200, ""},
	{"HTTP/1.999", "GET / HTTP/1.999\r\n" + h11 + "\r\n", 200, 200, ""},
	{"HTTP/1.1000", "GET / HTTP/1.1000\r\n" + h11 + "\r\n", 400, 400, ""},
	{"HTTP/1.", "GET / HTTP/1.\r\n" + h11 + "\r\n", 400, 400, ""},
	{"HTTP/01.1", "GET / HTTP/01.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"lowercase http", "GET / http/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"lowercase method", "get / HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"unknown method", "FOO / HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"tab after method", "GET\t/ HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"two spaces before URI", "GET  / HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"trailing spaces", "GET / HTTP/1.1  \r\n" + h11 + "\r\n", 200, 200, ""},
	{"relative path", "GET a HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"leading CRLF", "\r\nGET / HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 200, 200, ""},
	{"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400, 400, ""},
	{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 400, ""},
	{"two Host different case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n", 400, 400, ""},
	{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, 400, ""},
	{"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 400, ""},
	{"Host with dotdot", "GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", 400, 400, ""},
	{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 400, ""},
	{"Host only port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400, 400, ""},
	{"Host ipv6", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 200, 200, ""},
	{"space in URI", "GET /a b HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"control in URI", "GET /a\x01b HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"tab in URI", "GET /a\tb HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"NUL in URI", "GET /a\x00b HTTP/1.1\r\n" + h11 + "\r\n", 400, 400, ""},
	{"high byte in URI", "GET /\xff HTTP/1.1\r\n" + h11 + "\r\n", 200, 200, ""},
	{"header without colon", "GET / HTTP/1.1\r\n" + h11 + "Foo\r\n\r\n", 200, 400, "a line without ':' is not a field line (RFC 9112 §5); guessing invites desync"},
	{"space before colon", "GET / HTTP/1.1\r\n" + h11 + "Foo : b\r\n\r\n", 400, 400, ""},
	{"empty header name", "GET / HTTP/1.1\r\n" + h11 + ": b\r\n\r\n", 400, 400, ""},
	{"obs-fold", "GET / HTTP/1.1\r\n" + h11 + "Foo: b\r\n c\r\n\r\n", 400, 400, ""},
	{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 200, 200, ""},
	{"bare CR in request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400, 400, ""},
	{"bare CR in header", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, 400, ""},
	{"CR CR LF", "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 200, 400, "a CR not followed by LF is a bare CR (RFC 9112 §2.2)"},
	{"NUL in header value", "GET / HTTP/1.1\r\n" + h11 + "X: a\x00b\r\n\r\n", 400, 400, ""},
	{"NUL in header name", "GET / HTTP/1.1\r\n" + h11 + "X\x00: ab\r\n\r\n", 400, 400, ""},
	{"control in header value", "GET / HTTP/1.1\r\n" + h11 + "X: a\x01b\r\n\r\n", 200, 200, ""},
	{"DEL in header value", "GET / HTTP/1.1\r\n" + h11 + "X: a\x7fb\r\n\r\n", 200, 200, ""},
	{"invalid header name", "GET / HTTP/1.1\r\n" + h11 + "X@y: ab\r\n\r\n", 200, 200, ""},
	{"underscore header", "GET / HTTP/1.1\r\n" + h11 + "X_y: ab\r\n\r\n", 200, 200, ""},
	{"high byte header name", "GET / HTTP/1.1\r\n" + h11 + "X\xffY: b\r\n\r\n", 200, 200, ""},
	{"CL and TE (CL.TE)", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 400, ""},
	{"TE and CL (TE.CL)", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, 400, ""},
	{"two Content-Length", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, 400, ""},
	{"Content-Length list", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: 5, 5\r\n\r\nhello", 400, 400, ""},
	{"Content-Length +5", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: +5\r\n\r\nhello", 400, 400, ""},
	{"Content-Length -1", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: -1\r\n\r\n", 400, 400, ""},
	{"Content-Length overflow", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: 99999999999999999999\r\n\r\n", 400, 400, ""},
	{"Content-Length empty", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: \r\n\r\n", 400, 400, ""},
	{"Content-Length trailing space", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: 5 \r\n\r\nhello", 200, 200, ""},
	{"invalid CL with TE", "POST / HTTP/1.1\r\n" + h11 + "Content-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 400, ""},
	{"TE xchunked", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: xchunked\r\n\r\n", 501, 501, ""},
	{"TE xchunked with CL", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: xchunked\r\nContent-Length: 1\r\n\r\nx", 501, 501, ""},
	{"TE gzip, chunked", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, 501, ""},
	{"TE identity", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: identity\r\n\r\n", 501, 501, ""},
	{"TE empty", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding:\r\n\r\n", 501, 501, ""},
	{"TE Chunked", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 200, 200, ""},
	{"TE padded", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding:  chunked  \r\n\r\n0\r\n\r\n", 200, 200, ""},
	{"TE tab", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", 501, 200, "HTAB is OWS (RFC 9110 §5.6.3); nginx 1.22 skips only SP"},
	{"TE space before colon", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, 400, ""},
	{"TE twice", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 400, ""},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 400, ""},
	{"TE xchunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, 400, ""},
	{"TE without Host", "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, 400, ""},
	{"two If-Modified-Since", "GET / HTTP/1.1\r\n" + h11 + "If-Modified-Since: x\r\nIf-Modified-Since: y\r\n\r\n", 400, 400, ""},
	{"two If-Unmodified-Since", "GET / HTTP/1.1\r\n" + h11 + "If-Unmodified-Since: x\r\nIf-Unmodified-Since: y\r\n\r\n", 400, 400, ""},
	{"two If-Match", "GET / HTTP/1.1\r\n" + h11 + "If-Match: x\r\nIf-Match: y\r\n\r\n", 400, 400, ""},
	{"two If-None-Match", "GET / HTTP/1.1\r\n" + h11 + "If-None-Match: x\r\nIf-None-Match: y\r\n\r\n", 400, 400, ""},
	{"two Content-Range", "GET / HTTP/1.1\r\n" + h11 + "Content-Range: x\r\nContent-Range: y\r\n\r\n", 400, 400, ""},
	{"two If-Range", "GET / HTTP/1.1\r\n" + h11 + "If-Range: x\r\nIf-Range: y\r\n\r\n", 400, 400, ""},
	{"two Expect", "GET / HTTP/1.1\r\n" + h11 + "Expect: x\r\nExpect: y\r\n\r\n", 400, 400, ""},
	{"two Authorization", "GET / HTTP/1.1\r\n" + h11 + "Authorization: x\r\nAuthorization: y\r\n\r\n", 400, 400, ""},
	{"two Upgrade", "GET / HTTP/1.1\r\n" + h11 + "Upgrade: x\r\nUpgrade: y\r\n\r\n", 200, 200, ""},
	{"two Connection", "GET / HTTP/1.1\r\n" + h11 + "Connection: x\r\nConnection: y\r\n\r\n", 200, 200, ""},
	{"two Content-Type", "GET / HTTP/1.1\r\n" + h11 + "Content-Type: x\r\nContent-Type: y\r\n\r\n", 200, 200, ""},
	{"two User-Agent", "GET / HTTP/1.1\r\n" + h11 + "User-Agent: x\r\nUser-Agent: y\r\n\r\n", 200, 200, ""},
	{"chunked", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, 200, ""},
	{"chunk size 0x5", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400, 400, ""},
	{"chunk extension", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n", 200, 200, ""},
	{"chunk size BWS", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 200, 200, ""},
	{"chunk trailer", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\r\n\r\n", 200, 200, ""},
	{"chunk leading zeros", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\n", 200, 200, ""},
	{"chunk size huge", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400, 400, ""},
	{"chunk size int64 max", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nhello", 400, 400, ""},
	{"chunk size negative", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400, 400, ""},
	{"chunk size empty", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400, 400, ""},
	{"chunk data too long", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", 400, 400, ""},
	{"chunk bare LF", "POST / HTTP/1.1\r\n" + h11 + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 200, 400, "LF-only chunk framing is a smuggling vector; RFC 9112 §7.1 requires CRLF (newer nginx agrees)"},
}

func TestDifferentialNginx(t *testing.T) {
	startNginx(t)
	var table strings.Builder
	for _, c := range diffCases {
		raw := []byte(c.raw)
		got := ourStatus(raw)
		ng := ngxStatus(t, raw)
		if ng != c.nginx {
			t.Errorf("%s: nginx answered %d, table says %d", c.name, ng, c.nginx)
		}
		if got != c.ours {
			t.Errorf("%s: we answer %d, want %d", c.name, got, c.ours)
		}
		if (c.nginx != c.ours) != (c.reason != "") {
			t.Errorf("%s: a deviation from nginx must have a reason (and only a deviation)", c.name)
		}
		table.WriteString(c.name + " | " + itoa(ng) + " | " + itoa(got) + "\n")
	}
	if testing.Verbose() {
		t.Log("\n" + table.String())
	}
}

func itoa(n int) string {
	return string(AppendInt(nil, n))
}

// AppendInt is a tiny helper for the test table.
func AppendInt(b []byte, n int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	if n >= 10 {
		b = AppendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// TestDifferentialVariables compares $uri, $args, $host, $request_uri and
// $arg_a computed by nginx with our accessors.
func TestDifferentialVariables(t *testing.T) {
	startNginx(t)
	reqs := []string{
		"GET /a%2Fb HTTP/1.1\r\nHost: Ex.COM.:8080\r\n\r\n",
		"GET /a%2F..%2Fb HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/./b/../c HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET //a//b/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/b/.. HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/. HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a#x?y HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a?b#c HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a%3Fb?x=1&a=2&a=3 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%25/%23 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x?A=1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x?ba=1&a=2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x?a HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x?a= HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/.b/..a/... HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a%2e/b/%2E%2e/c HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/.%2e/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/..?q=/../ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/.?q HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/..#x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a%20b%2b+ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://H.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET http://h.com?x HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET http://h.com HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET http://[::1]:80/p HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: A_B.\r\n\r\n",
	}
	for _, raw := range reqs {
		out := ngxRoundTrip(t, ngxEcho, []byte(raw))
		_, body, _ := bytes.Cut(out, []byte("\r\n\r\n"))
		var r Request
		if _, err := r.Parse([]byte(raw), nil); err != nil {
			t.Errorf("%q: %v", raw, err)
			continue
		}
		a, _ := r.Arg([]byte("a"))
		ours := "uri=[" + string(r.Path()) + "] args=[" + string(r.Args()) + "] host=[" + string(r.Host()) +
			"] ru=[" + string(r.URI()) + "] a=[" + string(a) + "]"
		if string(body) != ours {
			t.Errorf("%q:\nnginx %s\nours  %s", raw, body, ours)
		}
	}
}

// TestDifferentialLimits checks the header buffer model against nginx's
// client_header_buffer_size 1k / large_client_header_buffers 4 8k.
func TestDifferentialLimits(t *testing.T) {
	startNginx(t)
	reqLine := func(n int) string { // request line of n bytes incl. CRLF
		return "GET /" + strings.Repeat("a", n-len("GET / HTTP/1.1\r\n")) + " HTTP/1.1\r\n"
	}
	hdr := func(n int) string { // header line of n bytes incl. CRLF
		return "X: " + strings.Repeat("a", n-5) + "\r\n"
	}
	cases := []struct {
		name string
		raw  string
		want int
	}{
		{"request line 1024", reqLine(1024) + h11 + "\r\n", 200},
		{"request line 1025", reqLine(1025) + h11 + "\r\n", 200},
		{"request line 8192", reqLine(8192) + h11 + "\r\n", 200},
		{"request line 8193", reqLine(8193) + h11 + "\r\n", 414},
		{"long request line with bad version", "GET /" + strings.Repeat("a", 9000) + " HTTP/2.0\r\n" + h11 + "\r\n", 414},
		{"long request line with early control", "GET /\x01" + strings.Repeat("a", 9000) + " HTTP/1.1\r\n" + h11 + "\r\n", 400},
		{"header line 8192", "GET / HTTP/1.1\r\n" + h11 + hdr(8192) + "\r\n", 200},
		{"header line 8193", "GET / HTTP/1.1\r\n" + h11 + hdr(8193) + "\r\n", 400},
		{"long header with early NUL", "GET / HTTP/1.1\r\n" + h11 + "X: \x00" + strings.Repeat("a", 9000) + "\r\n\r\n", 400},
		{"4 headers of 8000", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(8000), 4) + "\r\n", 200},
		{"5 headers of 8000", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(8000), 5) + "\r\n", 400},
		{"4 headers of 4100", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(4100), 4) + "\r\n", 200},
		{"5 headers of 4100", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(4100), 5) + "\r\n", 400},
		{"4 full buffers, no room for CRLF", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(8192), 4) + "\r\n", 400},
		{"4 full buffers incl. CRLF", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(8192), 3) + hdr(8190) + "\r\n", 200},
		{"long request line + 3 full headers + Host", reqLine(8192) + strings.Repeat(hdr(8192), 3) + h11 + "\r\n", 400},
		{"1000 header fields", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat("X-Abc: 0123456789\r\n", 999) + "\r\n", 200},
		{"1001 header fields", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat("X-Abc: 0123456789\r\n", 1000) + "\r\n", 400},
		{"ignored headers do not count", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat("X-Abc: 0\r\nX_y: 0\r\n", 600) + "\r\n", 200},
		{"671 lines of 50", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(50), 671) + "\r\n", 200},
		{"672 lines of 50", "GET / HTTP/1.1\r\n" + h11 + strings.Repeat(hdr(50), 672) + "\r\n", 400},
		{"600 leading CRLF", strings.Repeat("\r\n", 600) + "GET / HTTP/1.1\r\n" + h11 + "\r\n", 200},
	}
	for _, c := range cases {
		raw := []byte(c.raw)
		if ng := ngxStatus(t, raw); ng != c.want {
			t.Errorf("%s: nginx %d, table %d", c.name, ng, c.want)
		}
		if got := ourStatus(raw); got != c.want {
			t.Errorf("%s: ours %d, want %d", c.name, got, c.want)
		}
		// The limit must also trip while the head is still incomplete:
		// a client must not keep us waiting with an endless line.
		if c.want != 200 {
			var r Request
			cut := raw[:len(raw)-2]
			if _, err := r.Parse(cut, nil); err == ErrNeedMore && strings.Count(c.raw, "\n") == strings.Count(string(cut), "\n")+1 {
				t.Logf("%s: incomplete head waits for more (limit not reached yet)", c.name)
			}
		}
	}
}

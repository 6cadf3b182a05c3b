package e2e

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startKeepaliveRawApp answers each request on a kept-alive connection with
// reply(requestLine); an empty reply leaves the request unanswered, and a
// reply ending in "\x00close" (not sent) closes the connection after it.
func startKeepaliveRawApp(t *testing.T, reply func(requestLine string) string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					out := reply(req.Method + " " + req.RequestURI)
					if out == "" {
						time.Sleep(5 * time.Second)
						return
					}
					out, closeAfter := strings.CutSuffix(out, "\x00close")
					if _, err := c.Write([]byte(out)); err != nil {
						return
					}
					if closeAfter {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

const hostileConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    upstream app { server APP; keepalive 4; }
    server {
        listen 127.0.0.1:{{.Port}};
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 1s;
        }
    }
}
`

// A broken or hostile backend costs a clean 502/504 for that request only:
// invalid status lines, oversized headers, conflicting or duplicate
// lengths, truncated bodies, a flood of 1xx, silence. Bytes it sends after
// a response never reach another client's response (the pooled connection
// is discarded), and the next request works.
func TestHostileBackendResponses(t *testing.T) {
	fine := "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"
	app := startKeepaliveRawApp(t, func(line string) string {
		p := strings.Fields(line)[1]
		switch p {
		case "/bad-status":
			return "HTTP/1.1 abc\r\n\r\n\x00close"
		case "/no-status":
			return "garbage\r\n\r\n\x00close"
		case "/huge-header":
			return "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 128<<10) + "\r\nContent-Length: 1\r\n\r\nx"
		case "/cl-and-te":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nEVIL!"
		case "/two-cl":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 4\r\n\r\nhello"
		case "/truncated":
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b\x00close"
		case "/bad-chunk":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
		case "/garbage-after":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
		case "/1xx-flood":
			return strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 2000) + fine
		case "/silent":
			return ""
		}
		return fine
	})
	edge := start(t, "edgeproxy", strings.ReplaceAll(hostileConf, "APP", app), t.TempDir())
	for _, tc := range []struct {
		path   string
		status []int // acceptable statuses
		body   string
	}{
		{"/bad-status", []int{502}, ""},
		{"/no-status", []int{502}, ""},
		{"/huge-header", []int{502}, ""},
		// RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; the
		// chunked body (empty) is relayed, the rest is never read as a
		// response (the connection is not reused with bytes pending).
		{"/cl-and-te", []int{200}, "\x00empty"},
		{"/two-cl", []int{502}, ""},
		{"/truncated", []int{502}, ""},
		{"/bad-chunk", []int{502}, ""},
		{"/garbage-after", []int{200}, "hello"},
		{"/1xx-flood", []int{200, 502}, ""},
		{"/silent", []int{504}, ""},
	} {
		r := roundTrip(t, edge.Addr, get(tc.path), false)
		okStatus := false
		for _, s := range tc.status {
			okStatus = okStatus || r.Status == s
		}
		want := tc.body
		if want == "\x00empty" {
			want = ""
			if len(r.Body) != 0 {
				okStatus = false
			}
		}
		if !okStatus || (want != "" && string(r.Body) != want) {
			t.Errorf("%s: %d %q (%v), want %v %q", tc.path, r.Status, r.Body, r.Err, tc.status, tc.body)
		}
		if strings.Contains(string(r.Body), "EVIL") {
			t.Errorf("%s: the backend's extra bytes reached the client: %q", tc.path, r.Body)
		}
		// The next request (likely on a pooled upstream connection) is
		// answered by the backend's next response, never by leftovers.
		for i := 0; i < 3; i++ {
			n := roundTrip(t, edge.Addr, get("/ok"), false)
			if n.Status != 200 || string(n.Body) != "fine" {
				t.Fatalf("after %s: request %d got %d %q", tc.path, i, n.Status, n.Body)
			}
		}
	}
}

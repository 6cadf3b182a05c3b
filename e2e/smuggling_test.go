package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a backend that parses what the proxy sends with Go's strict
// HTTP/1.1 parser, answers each request with its sequence number, and
// records every request (and every stream it could not parse).
type recorder struct {
	addr string
	mu   sync.Mutex
	reqs []string // "METHOD URI len=N" per request, in arrival order
	bad  []string // parse errors: an ambiguous or malformed upstream stream
}

func startRecorder(t *testing.T) *recorder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *recorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			if err != io.EOF && !isTimeout(err) && !strings.Contains(err.Error(), "closed") && !strings.Contains(err.Error(), "reset") {
				r.mu.Lock()
				r.bad = append(r.bad, err.Error())
				r.mu.Unlock()
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			r.mu.Lock()
			r.bad = append(r.bad, "body: "+err.Error())
			r.mu.Unlock()
			return
		}
		if len(req.TransferEncoding) > 0 && req.Header.Get("Content-Length") != "" {
			r.mu.Lock()
			r.bad = append(r.bad, "both Transfer-Encoding and Content-Length sent upstream")
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, fmt.Sprintf("%s %s len=%d", req.Method, req.RequestURI, len(body)))
		n := len(r.reqs)
		r.mu.Unlock()
		msg := fmt.Sprintf("upstream request %d", n)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	}
}

func (r *recorder) take() (reqs, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs, bad = r.reqs, r.bad
	r.reqs, r.bad = nil, nil
	return reqs, bad
}

const smuggleConf = `
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
        }
    }
}
`

// readAll reads every response the server sends on c until it closes the
// connection or stays silent, and returns their statuses.
func readAllResponses(c net.Conn) (statuses []int, closed bool) {
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return statuses, !isTimeout(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
}

// Request smuggling and desync vectors (CL.TE, TE.CL, TE.TE obfuscations,
// duplicate and invalid lengths, chunk-size tricks, bare CR/LF, obs-fold,
// NUL, whitespace before the colon, HTTP/0.9, absolute-form tricks, a line
// feed in the URI) sent through the proxy to a recording backend that
// parses strictly. Each vector must be refused (4xx/5xx, connection
// closed) or passed as cleanly framed requests: the backend never sees a
// request the client did not get its own answer for, and never a stream it
// cannot parse.
func TestSmugglingVectorsThroughProxy(t *testing.T) {
	app := startRecorder(t)
	edge := start(t, "edgeproxy", strings.ReplaceAll(smuggleConf, "APP", app.addr), t.TempDir())
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	vectors := []struct{ name, raw string }{
		{"CL.TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"},
		{"TE.CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n" + smuggled + "\r\n0\r\n\r\n"},
		{"TE.TE space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
		{"TE chunked, identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
		{"TE identity, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"},
		{"TE tab", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"},
		{"TE twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n"},
		{"TE obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE uppercase", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n"},
		{"CL duplicate differing", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc" + smuggled},
		{"CL duplicate same", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"},
		{"CL plus sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"},
		{"CL negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
		{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc"},
		{"CL huge", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"},
		{"CL space inside", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n"},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nabc\r\n0\r\n\r\n"},
		{"chunk size negative", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"},
		{"chunk extension bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n"},
		{"chunk data too long", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"},
		{"chunk missing CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n"},
		{"chunk 0 then smuggled", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n"},
		{"bare CR in header", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"},
		{"NUL in header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"},
		{"NUL in header name", "GET / HTTP/1.1\r\nHost: x\r\nX\x00A: b\r\n\r\n"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"},
		{"header without colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n"},
		{"HTTP/0.9", "GET /x\r\n\r\n"},
		{"LF in URI", "GET /a\nb HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"space in URI", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"absolute-form other host", "GET http://evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"absolute-form with userinfo", "GET http://a@evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"},
		{"Host with space", "GET / HTTP/1.1\r\nHost: x y\r\n\r\n"},
		{"GET with body then request", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: " + fmt.Sprint(len(smuggled)) + "\r\n\r\n" + smuggled},
		{"pipelined pair", "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"Expect with TE.CL", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
		{"Connection names Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\nabc"},
		{"version HTTP/1.10", "GET / HTTP/1.10\r\nHost: x\r\n\r\n"},
		{"method with slash", "G/ET / HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	for _, v := range vectors {
		c, err := net.Dial("tcp", edge.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, v.raw); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		statuses, closed := readAllResponses(c)
		c.Close()
		time.Sleep(20 * time.Millisecond) // let the recorder note what it got
		reqs, bad := app.take()
		ok := 0
		for _, s := range statuses {
			if s < 300 {
				ok++
			}
		}
		t.Logf("%-32s client got %v (closed=%v); app saw %q", v.name, statuses, closed, reqs)
		if len(bad) > 0 {
			t.Errorf("%s: the app received a stream it could not parse: %v", v.name, bad)
		}
		if len(reqs) > ok {
			t.Errorf("%s: the app saw %d requests (%q) but the client got %d answers from it (%v): a smuggled request", v.name, len(reqs), reqs, ok, statuses)
		}
		// "/smuggled" may reach the app only as a request of its own that
		// the client pipelined after a complete body, with its own answer
		// (counted above).
		for _, r := range reqs {
			if strings.Contains(r, "/smuggled") && !strings.Contains(v.name, "then") {
				t.Errorf("%s: the smuggled request reached the app: %q", v.name, reqs)
			}
		}
		if len(statuses) == 0 {
			t.Errorf("%s: no answer at all", v.name)
		}
		for _, s := range statuses {
			if s >= 400 && !closed && s != 404 && s != 405 {
				t.Errorf("%s: answered %d but kept the connection open after a bad request", v.name, s)
			}
		}
	}
}

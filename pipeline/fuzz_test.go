package pipeline

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzTransport is a Transport for whole-connection fuzzing: it records the
// output and lets a worker (upstream exchange) wake the feeding goroutine.
type fuzzTransport struct {
	mu     sync.Mutex
	out    bytes.Buffer
	closed bool
	wake   chan struct{}
	sent   chan bool // SendDone results owed to the Conn
}

func (f *fuzzTransport) Write(bufs [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	for _, b := range bufs {
		f.out.Write(b)
	}
}

func (f *fuzzTransport) SendFile(fd *os.File, off, n int64) {
	f.SendStream(io.NewSectionReader(fd, off, n))
	fd.Close()
}

func (f *fuzzTransport) SendStream(r io.Reader) {
	f.mu.Lock()
	_, err := io.Copy(&f.out, r)
	f.mu.Unlock()
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
	f.sent <- err == nil
}

func (f *fuzzTransport) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

func (f *fuzzTransport) WakeAfter(d time.Duration) {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fuzzTransport) Tunnel(up net.Conn, early []byte) { up.Close() }

var (
	fuzzOnce sync.Once
	fuzzApp  string
)

// fuzzBackend is a loopback app for the proxied locations of the fuzz
// config: it echoes the request line and body length.
func fuzzBackend(t testing.TB) string {
	fuzzOnce.Do(func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fuzzApp = l.Addr().String()
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/plain")
			if strings.Contains(r.URL.Path, "stream") {
				w.Header().Set("X-Accel-Buffering", "no")
			}
			w.Write([]byte(r.Method + " " + r.RequestURI + " " + string(rune('0'+len(b)%10))))
		}))
	})
	return fuzzApp
}

// FuzzConn drives whole connections: arbitrary client bytes, fed in
// arbitrary pieces, through a Conn serving static files, returns, gzip,
// limit_req, error pages, and a proxy to a real loopback app (buffered and
// streamed). Nothing may panic or hang, input is never over-consumed, and
// whatever is written is a sequence of HTTP responses (it starts with a
// status line), with nothing after the connection is closed.
func FuzzConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /f.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=1-3\r\n\r\nGET /f.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n\r\n",
		"GET /app/x?y=1 HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n",
		"POST /app/up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /app/up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /stream/up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"GET /limited HTTP/1.1\r\nHost: a\r\n\r\nGET /limited HTTP/1.1\r\nHost: a\r\n\r\nGET /limited HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /missing HTTP/1.0\r\n\r\n",
		"HEAD /app/h HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"GET /\x00 HTTP/1.1\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
	} {
		f.Add([]byte(s), uint16(7))
		f.Add([]byte(s), uint16(0))
	}
	dir := f.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "f.txt"), bytes.Repeat([]byte("static file "), 100), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "50x.html"), []byte("sorry\n"), 0o644)
	app := fuzzBackend(f)
	conf := `error_log ` + dir + `/error.log; events {} http {
		limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s;
		map $http_x_m $m { default a; ~^b b; }
		client_max_body_size 100;
		server { listen 127.0.0.1:8080; root ` + dir + `;
		gzip on; gzip_min_length 1; gzip_types text/plain; gzip_proxied any;
		error_page 404 502 /50x.html;
		location = /ok { add_header X-M $m; return 200 "ok"; }
		location /limited { limit_req zone=z burst=1 nodelay; return 204; }
		location /app/ { proxy_pass http://` + app + `; proxy_read_timeout 2s; proxy_intercept_errors on; }
		location /stream/ { proxy_pass http://` + app + `; proxy_request_buffering off; proxy_buffering off; proxy_http_version 1.1; }
		location /ws { proxy_pass http://` + app + `; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; }
	} }`
	snap := compile(f, conf)
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		ft := &fuzzTransport{wake: make(chan struct{}, 1), sent: make(chan bool, 16)}
		c := NewConn(ft, snap, snap.Listeners[0], netip.MustParseAddrPort("127.0.0.1:5555"), netip.MustParseAddrPort("127.0.0.1:8080"), false)
		defer c.Closed()
		step := int(split%64) + 1
		var pending []byte
		feed := func() {
			n := c.Feed(pending)
			if n < 0 || n > len(pending) {
				t.Fatalf("Feed consumed %d of %d bytes", n, len(pending))
			}
			pending = pending[n:]
		}
		for off := 0; off < len(data); off += step {
			pending = append(pending, data[off:min(off+step, len(data))]...)
			feed()
			ft.mu.Lock()
			closed := ft.closed
			ft.mu.Unlock()
			if closed {
				break
			}
		}
		// Let upstream exchanges and sends finish, feeding again on every
		// wake-up, as a transport does; bounded in time.
		deadline := time.After(10 * time.Second)
		// A request body still expected (proxy_request_buffering off) will
		// not come: the client is gone, which the deferred Closed tells.
		for (c.phase == phaseUpstream && !c.collecting) || c.phase == phaseSending || len(ft.sent) > 0 {
			select {
			case ok := <-ft.sent:
				c.SendDone(ok)
				feed()
			case <-ft.wake:
				feed()
			case <-deadline:
				t.Fatalf("connection still busy after 10s in phase %d (input %q)", c.phase, data)
			}
		}
		ft.mu.Lock()
		out := ft.out.Bytes()
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) && !bytes.HasPrefix(out, []byte("HTTP/1.0 ")) {
			t.Errorf("output does not start with a status line: %q", out[:min(len(out), 80)])
		}
		ft.mu.Unlock()
	})
}

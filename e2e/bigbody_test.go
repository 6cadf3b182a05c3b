package e2e

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pattern is the repeating content of big bodies: random, so that nothing
// on the way can shortcut it, and cheap to produce at any length.
var pattern = func() []byte {
	b := make([]byte, 64<<10)
	rand.New(rand.NewSource(7)).Read(b)
	return b
}()

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// patternReader yields n bytes of pattern.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := copy(p, pattern[r.off%int64(len(pattern)):])
	if rest := r.n - r.off; int64(k) > rest {
		k = int(rest)
	}
	r.off += int64(k)
	return k, nil
}

func patternCRC(n int64) uint32 {
	h := crc32.New(castagnoli)
	_, _ = io.Copy(h, &patternReader{n: n})
	return h.Sum32()
}

// bigApp serves GET /…/big?n=N[&chunked=1] (N pattern bytes, with a
// Content-Length unless chunked) and POST /…/upload (answers "LEN CRC" of
// the body it read). firstByte counts requests whose body started to
// arrive at the app.
type bigApp struct {
	addr      string
	firstByte atomic.Int32
	fail      bool // answer 502 after reading the whole body
	bodies    atomic.Int32
}

func startBigApp(t *testing.T) *bigApp { return startBigAppFailing(t, false) }

func startBigAppFailing(t *testing.T, fail bool) *bigApp {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &bigApp{addr: l.Addr().String(), fail: fail}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/big") {
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = io.Copy(w, &patternReader{n: n})
			return
		}
		h := crc32.New(castagnoli)
		var one [1]byte
		k, err := io.ReadFull(r.Body, one[:])
		if k == 1 {
			a.firstByte.Add(1)
			h.Write(one[:])
		}
		m, err2 := io.Copy(h, r.Body)
		if err == nil {
			err = err2
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			http.Error(w, err.Error(), 500)
			return
		}
		a.bodies.Add(1)
		if a.fail {
			http.Error(w, "bad gateway", 502)
			return
		}
		fmt.Fprintf(w, "%d %08x", int64(k)+m, h.Sum32())
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return a
}

const bigConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    client_max_body_size 0;
    upstream retry {
        server FAILING;
        server APP;
    }
    server {
        listen 127.0.0.1:{{.Port}};
        location /buf/ {
            proxy_pass http://APP;
            proxy_temp_path {{.Tmp}}/proxy_temp;
            client_body_temp_path {{.Tmp}}/client_temp;
        }
        location /stream/ {
            proxy_pass http://APP;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }
        location /retry/ {
            proxy_pass http://retry;
            proxy_next_upstream error timeout http_502 non_idempotent;
        }
        location /notemp/ {
            proxy_pass http://APP;
            proxy_max_temp_file_size 0;
        }
    }
}
`

// download GETs path and returns the status, the framing and the length
// and CRC of the body.
func download(t *testing.T, addr, path string) (status int, framing string, n int64, sum uint32) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(120 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 64<<10), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	h := crc32.New(castagnoli)
	n, err = io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body after %d bytes: %v", path, n, err)
	}
	framing = "length"
	if len(resp.TransferEncoding) > 0 {
		framing = "chunked"
	}
	return resp.StatusCode, framing, n, h.Sum32()
}

// upload POSTs n pattern bytes (chunked when chunked) and returns the
// status and the app's answer.
func upload(t *testing.T, addr, path string, n int64, chunked bool) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(120 * time.Second))
	bw := bufio.NewWriterSize(c, 64<<10)
	if chunked {
		fmt.Fprintf(bw, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", path)
		r := &patternReader{n: n}
		buf := make([]byte, 50_000)
		for {
			k, err := r.Read(buf)
			if k > 0 {
				fmt.Fprintf(bw, "%x\r\n", k)
				bw.Write(buf[:k])
				bw.WriteString("\r\n")
			}
			if err != nil {
				break
			}
		}
		bw.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(bw, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, n)
		_, _ = io.Copy(bw, &patternReader{n: n})
	}
	if err := bw.Flush(); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Bodies larger than the memory buffers go through temporary files
// (buffered), through the app's stream (proxy_request_buffering off,
// proxy_max_temp_file_size 0) or as chunked uploads, and arrive whole, in
// nginx and edgeproxy alike.
func TestBigBodiesDifferential(t *testing.T) {
	app, failing := startBigApp(t), startBigAppFailing(t, true)
	conf := strings.NewReplacer("APP", app.addr, "FAILING", failing.addr).Replace(bigConf)
	ngx, edge := pair(t, conf, t.TempDir())
	const size = 6<<20 + 12345
	want := fmt.Sprintf("%d %08x", int64(size), patternCRC(size))
	for _, s := range []*server{ngx, edge} {
		for _, path := range []string{"/buf/big", "/buf/big?chunked=1", "/notemp/big", "/stream/big?chunked=1"} {
			p := path + "?n=" + strconv.Itoa(size)
			if strings.Contains(path, "?") {
				p = path + "&n=" + strconv.Itoa(size)
			}
			status, _, n, sum := download(t, s.Addr, p)
			if status != 200 || n != size || sum != patternCRC(size) {
				t.Errorf("%s GET %s: %d, %d bytes, crc %08x", s.Name, p, status, n, sum)
			}
		}
		for _, tc := range []struct {
			path    string
			chunked bool
		}{{"/buf/upload", false}, {"/buf/upload", true}, {"/stream/upload", false}, {"/stream/upload", true}, {"/notemp/upload", false},
			// A spilled body is sent again, whole, to the next server
			// after the first answers 502 (whichever one the balancer
			// tries first, one of the two uploads meets the failing one).
			{"/retry/upload", false}, {"/retry/upload", false}} {
			status, got := upload(t, s.Addr, tc.path, size, tc.chunked)
			if status != 200 || got != want {
				t.Errorf("%s POST %s chunked=%v: %d %q, want %q", s.Name, tc.path, tc.chunked, status, got, want)
			}
		}
	}
	if n := failing.bodies.Load(); n < 2 {
		t.Errorf("the failing server read %d whole bodies, want one per server", n)
	}
	// Nothing is left behind in the temporary directories.
	for _, d := range []string{"proxy_temp", "client_temp"} {
		ents, _ := os.ReadDir(edge.Dir + "/" + d)
		if len(ents) != 0 {
			t.Errorf("edgeproxy left %d files in %s", len(ents), d)
		}
	}
}

// With proxy_request_buffering off the app gets the first bytes of a body
// while the client is still sending it; with buffering on it gets nothing
// until the whole body is in. Same in nginx.
func TestRequestStreamingDifferential(t *testing.T) {
	app := startBigApp(t)
	ngx, edge := pair(t, strings.NewReplacer("APP", app.addr, "FAILING", app.addr).Replace(bigConf), t.TempDir())
	for _, s := range []*server{ngx, edge} {
		for _, tc := range []struct {
			path     string
			streamed bool
		}{{"/stream/upload", true}, {"/buf/upload", false}} {
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			const size = 1 << 20
			before := app.firstByte.Load()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", tc.path, size)
			first := make([]byte, 64<<10)
			(&patternReader{n: int64(len(first))}).Read(first)
			if _, err := c.Write(first); err != nil {
				t.Fatal(err)
			}
			arrived := false
			for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				if app.firstByte.Load() > before {
					arrived = true
					break
				}
			}
			if arrived != tc.streamed {
				t.Errorf("%s %s: body reached the app before its end = %v, want %v", s.Name, tc.path, arrived, tc.streamed)
			}
			_, _ = io.Copy(c, &patternReader{off: int64(len(first)), n: size})
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s %s: %v", s.Name, tc.path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if want := fmt.Sprintf("%d %08x", size, patternCRC(size)); string(b) != want {
				t.Errorf("%s %s: app saw %q, want %q", s.Name, tc.path, b, want)
			}
			c.Close()
		}
	}
}

// vmHWM returns the peak resident set size of pid in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// A 1 GiB download and a 1 GiB upload through the proxy (buffered, so they
// go through temporary files) leave edgeproxy's peak RSS where it was:
// memory is bounded whatever the body size.
func TestGiantBodiesKeepRSSFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB")
	}
	app := startBigApp(t)
	edge := start(t, "edgeproxy", strings.NewReplacer("APP", app.addr, "FAILING", app.addr).Replace(bigConf), t.TempDir())
	const size = 1 << 30
	// Warm up (buffers, pools, a spilled body) before taking the baseline.
	download(t, edge.Addr, "/buf/big?n="+strconv.Itoa(8<<20))
	upload(t, edge.Addr, "/buf/upload", 8<<20, false)
	base := vmHWM(t, edge.cmd.Process.Pid)
	start := time.Now()
	status, _, n, sum := download(t, edge.Addr, "/buf/big?n="+strconv.Itoa(size))
	if status != 200 || n != size || sum != patternCRC(size) {
		t.Fatalf("1 GiB download: %d, %d bytes, crc %08x", status, n, sum)
	}
	down := time.Since(start)
	start = time.Now()
	if status, got := upload(t, edge.Addr, "/buf/upload", size, false); status != 200 || got != fmt.Sprintf("%d %08x", size, patternCRC(size)) {
		t.Fatalf("1 GiB upload: %d %q", status, got)
	}
	up := time.Since(start)
	peak := vmHWM(t, edge.cmd.Process.Pid)
	t.Logf("peak RSS %d MiB before, %d MiB after 1 GiB down (%v) and up (%v)", base>>10, peak>>10, down.Round(time.Millisecond), up.Round(time.Millisecond))
	if peak-base > 64<<10 {
		t.Errorf("peak RSS grew by %d MiB moving 1 GiB bodies; want bounded (< 64 MiB)", (peak-base)>>10)
	}
}

// With proxy_request_buffering off, once the whole body has been sent the
// wait for the app's answer is bounded by proxy_read_timeout, not by
// client_body_timeout (the app here answers after 1.5 s; the body timeout
// is 1 s).
func TestStreamedBodyThenSlowApp(t *testing.T) {
	app := startBackend(t, "a")
	conf := strings.ReplaceAll(`
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        location /s/ {
            proxy_pass http://APP/app/;
            proxy_http_version 1.1;
            proxy_request_buffering off;
            client_body_timeout 1s;
            proxy_read_timeout 10s;
        }
    }
}
`, "APP", app.addr)
	ngx, edge := pair(t, conf, t.TempDir())
	for _, s := range []*server{ngx, edge} {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// The body comes in two parts, so client_body_timeout is armed.
		io.WriteString(c, "POST /s/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel")
		time.Sleep(300 * time.Millisecond)
		io.WriteString(c, "lo")
		r := readReply(c, bufio.NewReader(c), false)
		c.Close()
		if r.Status != 200 || !strings.Contains(string(r.Body), `body="hello"`) {
			t.Errorf("%s: %d %q %v", s.Name, r.Status, r.Body, r.Err)
		}
	}
}

// X-Accel-Limit-Rate from the app paces the response (nginx's limit_rate
// for that request, which lets the first second's worth go at once): 600 KB
// at 200 KB/s takes about two seconds, in nginx and edgeproxy alike, and
// the header is not passed on.
func TestAccelLimitRateDifferential(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("r", 600_000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Limit-Rate", "200000")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	conf := strings.ReplaceAll(`
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        location / { proxy_pass http://APP; }
    }
}
`, "APP", l.Addr().String())
	ngx, edge := pair(t, conf, t.TempDir())
	for _, s := range []*server{ngx, edge} {
		start := time.Now()
		resp, err := http.Get("http://" + s.Addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		t.Logf("%s: %d bytes in %v", s.Name, len(b), took)
		if string(b) != body || resp.Header.Get("X-Accel-Limit-Rate") != "" {
			t.Errorf("%s: %d bytes, X-Accel-Limit-Rate %q", s.Name, len(b), resp.Header.Get("X-Accel-Limit-Rate"))
		}
		if took < 1500*time.Millisecond || took > 5*time.Second {
			t.Errorf("%s: 600 KB at 200 KB/s took %v", s.Name, took)
		}
	}
}

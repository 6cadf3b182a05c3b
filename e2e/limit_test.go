package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const limitConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    limit_req_zone $binary_remote_addr zone=mylimit:10m rate=1r/s;
    limit_req_zone $binary_remote_addr zone=pace:10m rate=10r/s;
    limit_req_zone $binary_remote_addr zone=dry:10m rate=1r/s;
    limit_conn_zone $binary_remote_addr zone=addr:10m;
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location /api/login {
            limit_req zone=mylimit burst=10 nodelay;
            add_header X-Limit $limit_req_status always;
        }
        location /custom {
            limit_req zone=mylimit;
            limit_req_status 429;
        }
        location /pace {
            limit_req zone=pace burst=5;
        }
        location /dry {
            limit_req zone=dry;
            limit_req_dry_run on;
            add_header X-Limit $limit_req_status always;
        }
        location /returned {
            # return runs before the limit phases: never limited (nginx).
            limit_req zone=mylimit;
            return 200 "not limited\n";
        }
        location /download/ {
            limit_conn addr 1;
        }
    }
}
`

// keepAliveStatuses sends n requests on one keep-alive connection from
// source address src and returns the status codes and X-Limit values.
func keepAliveStatuses(t *testing.T, addr, src, path string, n int) ([]int, []string) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := newReader(c)
	var codes []int
	var lim []string
	for i := 0; i < n; i++ {
		if _, err := io.WriteString(c, get(path)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		lim = append(lim, resp.Header.Get("X-Limit"))
	}
	return codes, lim
}

func count(codes []int, code int) int {
	n := 0
	for _, c := range codes {
		if c == code {
			n++
		}
	}
	return n
}

// The seed's login limit: a burst of 20 from one client lets 1+burst through
// at once and rejects the rest with 503, like nginx; another client is
// limited independently; after the bucket drains requests pass again.
func limitDocs(t *testing.T) string {
	d := t.TempDir()
	for _, p := range []string{"api/login", "custom", "pace", "dry"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, p), []byte("ok\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestLimitReqBurstDifferential(t *testing.T) {
	ngx, edge := pair(t, limitConf, limitDocs(t))
	for _, s := range []*server{ngx, edge} {
		codes, lim := keepAliveStatuses(t, s.Addr, "127.0.0.1", "/api/login", 20)
		if count(codes, 200) != 11 || count(codes, 503) != 9 {
			t.Errorf("%s: statuses %v", s.Name, codes)
		}
		if lim[0] != "PASSED" || lim[19] != "REJECTED" {
			t.Errorf("%s: $limit_req_status first %q last %q", s.Name, lim[0], lim[19])
		}
		// A second client address has its own bucket.
		codes2, _ := keepAliveStatuses(t, s.Addr, "127.0.0.2", "/api/login", 12)
		if count(codes2, 200) != 11 {
			t.Errorf("%s: second client statuses %v", s.Name, codes2)
		}
		// limit_req_status 429 shares the (now full) zone.
		codes3, _ := keepAliveStatuses(t, s.Addr, "127.0.0.1", "/custom", 1)
		if codes3[0] != 429 {
			t.Errorf("%s: limit_req_status 429: got %v", s.Name, codes3)
		}
		codes4, _ := keepAliveStatuses(t, s.Addr, "127.0.0.1", "/returned", 3)
		if count(codes4, 200) != 3 {
			t.Errorf("%s: a location answered by return was limited: %v", s.Name, codes4)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	for _, s := range []*server{ngx, edge} {
		codes, _ := keepAliveStatuses(t, s.Addr, "127.0.0.1", "/api/login", 2)
		if codes[0] != 200 || codes[1] != 503 {
			t.Errorf("%s: after 1.1s: %v, want one more pass", s.Name, codes)
		}
	}
	// The rejection page is nginx's 503 page in both.
	a := roundTrip(t, ngx.Addr, get("/api/login"), false)
	b := roundTrip(t, edge.Addr, get("/api/login"), false)
	if d := diff(a, b, ngx.Port, edge.Port); len(d) > 0 {
		t.Errorf("503 responses differ: %v", d)
	}
}

// Without nodelay, requests over the rate wait (off the event loop) instead
// of being rejected: 6 requests at 10 r/s with burst=5 take ~0.5 s, and the
// server keeps answering other clients meanwhile.
func TestLimitReqDelay(t *testing.T) {
	ngx, edge := pair(t, limitConf, limitDocs(t))
	for _, s := range []*server{ngx, edge} {
		start := time.Now()
		codes, _ := keepAliveStatuses(t, s.Addr, "127.0.0.3", "/pace", 6)
		el := time.Since(start)
		if count(codes, 200) != 6 {
			t.Errorf("%s: statuses %v", s.Name, codes)
		}
		if el < 400*time.Millisecond || el > 3*time.Second {
			t.Errorf("%s: 6 paced requests took %v, want about 500ms", s.Name, el)
		}
	}
	// While one client is being delayed, another is served at once.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		keepAliveStatuses(t, edge.Addr, "127.0.0.4", "/pace", 8)
	}()
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	r := roundTrip(t, edge.Addr, get("/returned"), false)
	if el := time.Since(start); r.Status != 200 || el > 300*time.Millisecond {
		t.Errorf("other client waited %v (status %d) while one was delayed", el, r.Status)
	}
	wg.Wait()
}

func TestLimitReqDryRun(t *testing.T) {
	ngx, edge := pair(t, limitConf, limitDocs(t))
	for _, s := range []*server{ngx, edge} {
		codes, lim := keepAliveStatuses(t, s.Addr, "127.0.0.5", "/dry", 3)
		if count(codes, 200) != 3 || lim[0] != "PASSED" || lim[2] != "REJECTED_DRY_RUN" {
			t.Errorf("%s: dry run: %v %v", s.Name, codes, lim)
		}
	}
}

// limit_conn counts requests in progress: while one client's download is
// stalled (it does not read), its second request gets 503; once the first
// finishes, requests pass again.
func TestLimitConnDifferential(t *testing.T) {
	docs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(docs, "download"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(docs, "download/big"), bytes.Repeat([]byte("x"), 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ngx, edge := pair(t, limitConf, docs)
	for _, s := range []*server{ngx, edge} {
		slow, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(slow, get("/download/big")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the response is now stuck in socket buffers
		r := roundTrip(t, s.Addr, get("/download/big"), false)
		if r.Status != 503 {
			t.Errorf("%s: second download while one is in progress: %d, want 503", s.Name, r.Status)
		}
		slow.Close()
		time.Sleep(300 * time.Millisecond)
		r = roundTrip(t, s.Addr, "HEAD /download/big HTTP/1.1\r\nHost: x\r\n\r\n", true)
		if r.Status != 200 {
			t.Errorf("%s: after the slow client left: %d, want 200", s.Name, r.Status)
		}
	}
	_ = fmt.Sprint()
}

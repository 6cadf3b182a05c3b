package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const soakConf = `
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log {{.Tmp}}/access.log combined;
    client_max_body_size 10m;
    proxy_cache_path {{.Tmp}}/cache keys_zone=soak:10m;
    limit_req_zone $binary_remote_addr zone=soak:1m rate=50r/s;
    upstream app { server APP max_fails=0; keepalive 16; }
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location /static/ { }
        location /app/ {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 5s;
        }
        location /cached/ {
            proxy_pass http://app/app/;
            proxy_cache soak;
            proxy_cache_valid 200 1s;
            add_header X-Cache $upstream_cache_status;
        }
        location /limited/ {
            limit_req zone=soak burst=5 nodelay;
            return 200 "limited ok";
        }
        location = /metrics { metrics; }
    }
}
`

// soakApp is a restartable backend on a fixed address.
type soakApp struct {
	addr  string
	mu    sync.Mutex
	srv   *http.Server
	conns atomic.Int64 // open connections from the proxy
}

func (a *soakApp) start(t *testing.T) {
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("backend restart: %v", err)
	}
	a.addr = l.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/slow"):
				time.Sleep(100 * time.Millisecond)
			case strings.HasSuffix(r.URL.Path, "/big"):
				w.Header().Set("Content-Length", strconv.Itoa(2<<20))
				_, _ = io.Copy(w, &patternReader{n: 2 << 20})
				return
			case strings.HasSuffix(r.URL.Path, "/upload"):
				n, _ := io.Copy(io.Discard, r.Body)
				fmt.Fprintf(w, "got %d", n)
				return
			}
			io.WriteString(w, "app ok")
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				a.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				a.conns.Add(-1)
			}
		},
	}
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go srv.Serve(l)
}

func (a *soakApp) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.srv.Close()
}

func procCount(pid int, what string) int {
	switch what {
	case "fds":
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return -1
		}
		return len(ents)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == what+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

// soakRequest sends one request of the mix on its own connection and
// checks the answer: a complete response (the body as long as it says) or
// a clear error status. Some requests are abandoned on purpose mid-request
// or mid-response. It returns "ok", "error" (a clear 5xx/429) or
// "abandoned"; anything else is a failure description.
func soakRequest(addr string, rng *rand.Rand) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var req string
	abandon := ""
	switch k := rng.Intn(20); {
	case k < 4:
		req = get("/static/f.txt")
	case k < 8:
		req = get("/app/fast")
	case k < 9:
		req = get("/app/slow")
	case k < 11:
		req = get("/cached/c" + strconv.Itoa(rng.Intn(5)))
	case k < 13:
		req = get("/limited/x")
	case k < 15:
		body := strings.Repeat("u", 1+rng.Intn(200_000))
		req = fmt.Sprintf("POST /app/upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	case k < 16:
		req = get("/app/big")
	case k < 18:
		abandon = "response"
		req = get("/app/big")
	default:
		abandon = "request"
		req = "POST /app/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("p", 1000)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return "write: " + err.Error()
	}
	if abandon == "request" {
		return "abandoned"
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "read head: " + err.Error()
	}
	if abandon == "response" {
		_, _ = io.CopyN(io.Discard, resp.Body, 1000)
		return "abandoned"
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return fmt.Sprintf("%s: body cut after %d bytes: %v", strings.Fields(req)[1], n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Sprintf("%s: body %d bytes, Content-Length %d", strings.Fields(req)[1], n, resp.ContentLength)
	}
	switch {
	case resp.StatusCode < 300:
		return "ok"
	case resp.StatusCode == 502 || resp.StatusCode == 503 || resp.StatusCode == 504:
		return "error"
	}
	return fmt.Sprintf("%s: unexpected status %d", strings.Fields(req)[1], resp.StatusCode)
}

// A soak run of mixed traffic (static, proxied, cached, limited, uploads,
// downloads, clients that abandon requests and responses) with the backend
// killed and restarted and the config reloaded meanwhile: every request
// gets a complete answer or a clear error, and file descriptors, threads,
// RSS and upstream connections come back to where they were. SOAK sets the
// length (CI: 20s; `make soak`: 30m).
func TestSoak(t *testing.T) {
	d := 20 * time.Second
	if s := os.Getenv("SOAK"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	} else if testing.Short() {
		t.Skip("soak")
	}
	docs := t.TempDir()
	_ = os.MkdirAll(docs+"/static", 0o755)
	_ = os.WriteFile(docs+"/static/f.txt", []byte(strings.Repeat("static ", 3000)), 0o644)
	app := &soakApp{addr: "127.0.0.1:0"}
	app.start(t)
	defer app.stop()
	edge := start(t, "edgeproxy", strings.ReplaceAll(soakConf, "APP", app.addr), docs)
	pid := edge.cmd.Process.Pid
	// Baseline after a warm-up.
	for i := 0; i < 50; i++ {
		soakRequest(edge.Addr, rand.New(rand.NewSource(int64(i))))
	}
	time.Sleep(500 * time.Millisecond)
	baseFDs, baseThreads := procCount(pid, "fds"), procCount(pid, "Threads")
	baseG := goroutines(t, edge)

	var sent, okN, errN, abandoned atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w) * 7919))
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				switch r := soakRequest(edge.Addr, rng); r {
				case "ok":
					okN.Add(1)
				case "error":
					errN.Add(1)
				case "abandoned":
					abandoned.Add(1)
				default:
					failMu.Lock()
					if len(failures) < 20 {
						failures = append(failures, r)
					}
					failMu.Unlock()
				}
			}
		}(w)
	}
	// Faults and operations during the run.
	end := time.Now().Add(d)
	var maxRSS int
	for i := 0; time.Now().Before(end); i++ {
		time.Sleep(time.Second)
		switch i % 10 {
		case 3:
			app.stop() // the backend dies...
		case 4:
			app.start(t) // ...and comes back
		case 7:
			_ = edge.cmd.Process.Signal(syscall.SIGHUP)
		}
		if rss := procCount(pid, "VmRSS"); rss > maxRSS {
			maxRSS = rss
		}
	}
	close(stop)
	wg.Wait()
	time.Sleep(2 * time.Second)  // abandoned exchanges finish, keepalive settles
	time.Sleep(11 * time.Second) // idle upstream workers retire after 10 s
	fds, threads, gs := procCount(pid, "fds"), procCount(pid, "Threads"), goroutines(t, edge)
	t.Logf("%v: %d requests: %d ok, %d clear errors, %d abandoned on purpose, %d failures; fds %d→%d, threads %d→%d, goroutines %d→%d, max RSS %d MiB, app conns open %d",
		d, sent.Load(), okN.Load(), errN.Load(), abandoned.Load(), len(failures), baseFDs, fds, baseThreads, threads, baseG, gs, maxRSS>>10, app.conns.Load())
	if len(failures) > 0 {
		t.Errorf("requests without a complete answer or a clear error:\n%s", strings.Join(failures, "\n"))
	}
	if got := okN.Load() + errN.Load() + abandoned.Load(); got != sent.Load() {
		t.Errorf("sent %d requests, accounted for %d", sent.Load(), got)
	}
	if okN.Load() < sent.Load()/2 {
		t.Errorf("only %d of %d requests succeeded", okN.Load(), sent.Load())
	}
	// Idle keep-alive upstream connections (keepalive 16) may stay; the
	// client connections are all closed.
	if fds > baseFDs+20 {
		t.Errorf("file descriptors grew from %d to %d", baseFDs, fds)
	}
	// Goroutines: the ones per idle keep-alive upstream connection aside
	// (fasthttp keeps none), nothing may be left of the abandoned
	// exchanges.
	if gs > baseG+16 {
		t.Errorf("goroutines grew from %d to %d", baseG, gs)
	}
	if threads > baseThreads+8 {
		t.Errorf("threads grew from %d to %d", baseThreads, threads)
	}
	if n := app.conns.Load(); n > 16+8 {
		t.Errorf("%d upstream connections left open (keepalive 16)", n)
	}
	if maxRSS > 400<<10 {
		t.Errorf("RSS reached %d MiB", maxRSS>>10)
	}
}

// goroutines reads go_goroutines from the metrics endpoint.
func goroutines(t *testing.T, s *server) int {
	resp, err := http.Get("http://" + s.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	t.Fatal("no go_goroutines in the metrics")
	return 0
}

package e2e

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// listenersConf serves one server per listening socket; each answers with
// its own name, and /api/ goes to a (slow on /api/slow) app.
func listenersConf(app string, ports map[string]int) string {
	var b strings.Builder
	b.WriteString("worker_processes 1;\nevents { worker_connections 1024; }\nhttp {\n")
	for _, name := range []string{"A", "B", "C", "C2", "D"} {
		p, ok := ports[name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "    server {\n        listen 127.0.0.1:%d;\n        location / { return 200 \"%s\\n\"; }\n        location /api/ { proxy_pass http://%s; }\n    }\n", p, name, app)
	}
	b.WriteString("}\n")
	return b.String()
}

// A reload that adds and removes listening sockets, under keep-alive load on
// a socket it keeps: the added one serves, a request in flight on the
// removed one completes and its connection is then closed, new connections
// to the removed one are refused, no request on the kept one fails; a reload
// whose new socket cannot be bound is refused as a whole; a removed socket
// can be added back.
func TestReloadListeners(t *testing.T) {
	app := startCountingApp(t)
	edge := start(t, "edgeproxy", strings.Replace(listenersConf(app.addr, map[string]int{"A": 1}), "127.0.0.1:1;", "127.0.0.1:{{.Port}};", 1), t.TempDir())
	cf := filepath.Join(edge.Dir, "nginx.conf")
	portB, portC, portD := freePort(t), freePort(t), freePort(t)
	addrB, addrC := fmt.Sprintf("127.0.0.1:%d", portB), fmt.Sprintf("127.0.0.1:%d", portC)
	reload := func(ports map[string]int) {
		t.Helper()
		if err := os.WriteFile(cf, []byte(listenersConf(app.addr, ports)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := edge.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// Added: B serves.
	reload(map[string]int{"A": edge.Port, "B": portB})
	waitBody(t, addrB, "B\n")

	// Keep-alive load on A for the rest of the test.
	var failures, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", edge.Addr); err != nil {
						failures.Add(1)
						return
					}
					br = newReader(c)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, get("/")); err != nil {
					failures.Add(1)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					failures.Add(1)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				total.Add(1)
				if resp.StatusCode != 200 || string(b) != "A\n" {
					failures.Add(1)
				}
				if resp.Close {
					c.Close()
					c = nil
				}
			}
		}()
	}

	// A slow request in flight on B while a reload removes B and adds C.
	inflight, err := net.Dial("tcp", addrB)
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Close()
	_ = inflight.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(inflight, get("/api/slow")) // the app sleeps 300 ms
	time.Sleep(100 * time.Millisecond)
	reload(map[string]int{"A": edge.Port, "C": portC})
	ibr := newReader(inflight)
	resp, err := http.ReadResponse(ibr, nil)
	if err != nil {
		t.Fatalf("request in flight on the removed listener lost: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/api/slow") {
		t.Fatalf("request in flight on the removed listener: %d %q", resp.StatusCode, body)
	}
	// Then its (idle, keep-alive) connection is closed.
	if n, err := ibr.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("connection of the removed listener not closed after its request: %d %v", n, err)
	}
	waitBody(t, addrC, "C\n")
	waitRefused(t, addrB)

	// A reload whose new socket cannot be bound is refused as a whole.
	busy, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", portD))
	if err != nil {
		t.Fatal(err)
	}
	reload(map[string]int{"A": edge.Port, "B": portB, "D": portD})
	time.Sleep(100 * time.Millisecond)
	// Reloads are handled in order: once this one shows, the refused one
	// has been handled.
	reload(map[string]int{"A": edge.Port, "C2": portC})
	waitBody(t, addrC, "C2\n")
	busy.Close()
	if c, err := net.Dial("tcp", addrB); err == nil {
		c.Close()
		t.Fatal("a refused reload opened B")
	}

	// A removed socket can be added back (C goes).
	reload(map[string]int{"A": edge.Port, "B": portB})
	waitBody(t, addrB, "B\n")
	waitRefused(t, addrC)

	close(stop)
	wg.Wait()
	if failures.Load() != 0 || total.Load() == 0 {
		t.Fatalf("%d failed of %d requests on the kept listener", failures.Load(), total.Load())
	}
}

// waitBody waits (bounded) until addr answers GET / with body.
func waitBody(t *testing.T, addr, body string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, get("/"))
			r := readReply(c, newReader(c), false)
			c.Close()
			if string(r.Body) == body {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %q (last: %v)", addr, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRefused waits (bounded) until connecting to addr is refused.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("connecting to the removed %s: %v (want connection refused)", addr, err)
			}
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after its removal", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tlsListenersConf(app, docs string, plain, tlsPort int) string {
	c := fmt.Sprintf(`worker_processes 1;
events { worker_connections 1024; }
http {
    server { listen 127.0.0.1:%d; return 200 "plain\n"; }
`, plain)
	if tlsPort > 0 {
		c += fmt.Sprintf(`    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s/ec.crt;
        ssl_certificate_key %s/ec.key;
        location / { return 200 "tls\n"; }
        location /api/ { proxy_pass http://%s; }
    }
`, tlsPort, docs, docs, app)
	}
	return c + "}\n"
}

// The same for TLS sockets: a reload adds one (it serves), then drops it
// with a request in flight (which completes; new connections are refused).
// Then QUIT with a TLS request in flight: it completes, the process exits.
func TestReloadTLSListeners(t *testing.T) {
	app := startCountingApp(t)
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "localhost")
	edge := start(t, "edgeproxy", strings.Replace(tlsListenersConf(app.addr, docs, 1, 0), "127.0.0.1:1;", "127.0.0.1:{{.Port}};", 1), docs)
	cf := filepath.Join(edge.Dir, "nginx.conf")
	portT := freePort(t)
	addrT := fmt.Sprintf("127.0.0.1:%d", portT)
	reload := func(tlsPort int) {
		t.Helper()
		if err := os.WriteFile(cf, []byte(tlsListenersConf(app.addr, docs, edge.Port, tlsPort)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := edge.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	slowTLS := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", addrT, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		io.WriteString(c, get("/api/slow")) // the app sleeps 300 ms
		return c, bufio.NewReader(c)
	}
	readSlow := func(c net.Conn, br *bufio.Reader, what string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: TLS request in flight lost: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "/api/slow") {
			t.Fatalf("%s: TLS request in flight: %d %q", what, resp.StatusCode, body)
		}
	}

	reload(portT)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := tlsGet(t, addrT, cfg, get("/"))
		if r.Err == nil && string(r.Body) == "tls\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the added TLS socket never served: %v %q", r.Err, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	c, br := slowTLS()
	time.Sleep(100 * time.Millisecond)
	reload(0)
	readSlow(c, br, "removal")
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("connection of the removed TLS socket not closed: %d %v", n, err)
	}
	c.Close()
	waitRefused(t, addrT)
	waitBody(t, edge.Addr, "plain\n")

	// Graceful stop with a TLS request in flight.
	reload(portT)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := tlsGet(t, addrT, cfg, get("/")); r.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TLS socket not back")
		}
	}
	idle, err := tls.Dial("tcp", addrT, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(idle, get("/"))
	ibr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(ibr, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("keep-alive TLS request: %v", err)
	} else {
		io.ReadAll(resp.Body)
	}
	c, br = slowTLS()
	time.Sleep(100 * time.Millisecond)
	if err := edge.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	readSlow(c, br, "QUIT")
	// The idle keep-alive TLS connection is closed.
	if n, err := ibr.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("idle TLS connection not closed by QUIT: %d %v", n, err)
	}
	exited := make(chan struct{})
	go func() { _, _ = edge.cmd.Process.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("edgeproxy did not exit after QUIT")
	}
}

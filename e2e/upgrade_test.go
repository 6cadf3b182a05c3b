package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const upgradeConf = `
worker_processes 1;
pid {{.Tmp}}/edge.pid;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        listen 127.0.0.1:{{.Port2}} ssl;
        listen unix:{{.Tmp}}/edge.sock;
        ssl_certificate {{.Dir}}/ec.crt;
        ssl_certificate_key {{.Dir}}/ec.key;
        location / { return 200 "$pid\n"; }
    }
}
`

// Binary upgrade, nginx's way, under a load of new connections (plain and
// TLS) and of a keep-alive client: USR2 starts the new binary on the inherited listening sockets and
// renames the pid file to .oldbin; both serve; QUIT makes the old one stop
// accepting and exit. No connection is refused and no request fails.
func TestBinaryUpgradeUnderLoad(t *testing.T) {
	// The new process outlives its parent (the old one): make this test
	// process the subreaper that inherits it, to reap it at the end.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v", err)
	}
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "localhost")
	// systemd's notification socket (Type=notify): the new binary must
	// announce itself as the main process, the old one must not say
	// STOPPING when it goes.
	notifyPath := filepath.Join(t.TempDir(), "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	var notes []string
	var notesMu sync.Mutex
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			notesMu.Lock()
			notes = append(notes, string(buf[:n]))
			notesMu.Unlock()
		}
	}()
	t.Setenv("NOTIFY_SOCKET", notifyPath)
	edge := start(t, "edgeproxy", upgradeConf, docs)
	pidPath := filepath.Join(edge.Dir, "edge.pid")
	oldPid := edge.cmd.Process.Pid
	conf, _ := os.ReadFile(filepath.Join(edge.Dir, "nginx.conf"))
	tlsAt := sslListenAddr(t, string(conf))
	var newPid atomic.Int64
	t.Cleanup(func() {
		if p := int(newPid.Load()); p > 0 {
			_ = syscall.Kill(p, syscall.SIGKILL)
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p, &ws, 0, nil)
		}
	})

	var failures, total atomic.Int64
	var mu sync.Mutex
	var errs []string
	pids := map[string]int{}
	fail := func(err string) {
		failures.Add(1)
		mu.Lock()
		if len(errs) < 10 {
			errs = append(errs, err)
		}
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := func(useTLS bool) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var c net.Conn
			var err error
			if useTLS {
				c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAt, &tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = net.DialTimeout("tcp", edge.Addr, 5*time.Second)
			}
			if err != nil {
				fail("connect: " + err.Error())
				continue
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
				fail("write: " + err.Error())
				c.Close()
				continue
			}
			resp, err := http.ReadResponse(newReader(c), nil)
			if err != nil {
				fail("read: " + err.Error())
				c.Close()
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.Close()
			total.Add(1)
			if resp.StatusCode != 200 {
				fail(fmt.Sprintf("status %d", resp.StatusCode))
				continue
			}
			mu.Lock()
			pids[strings.TrimSpace(string(b))]++
			mu.Unlock()
		}
	}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go client(i == 3)
	}
	// And a keep-alive client as browsers and SDKs are: net/http retries
	// a GET whose idle connection the old process closed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
		defer hc.CloseIdleConnections()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := hc.Get("http://" + edge.Addr + "/")
			if err != nil {
				fail("keep-alive: " + err.Error())
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			total.Add(1)
			if resp.StatusCode != 200 {
				fail(fmt.Sprintf("keep-alive: status %d", resp.StatusCode))
				continue
			}
			mu.Lock()
			pids[strings.TrimSpace(string(b))]++
			mu.Unlock()
		}
	}()
	seen := func(pid int) bool {
		mu.Lock()
		defer mu.Unlock()
		return pids[strconv.Itoa(pid)] > 0
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s (failures: %d %v)", what, failures.Load(), errs)
			}
		}
	}
	waitFor("no response from the old binary", 10*time.Second, func() bool { return seen(oldPid) })

	if err := edge.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// The pid file moves to .oldbin and the new process writes its own.
	waitFor("the new binary did not write the pid file", 20*time.Second, func() bool {
		b, err := os.ReadFile(pidPath)
		if err != nil {
			return false
		}
		p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if p > 0 && p != oldPid {
			newPid.Store(int64(p))
			return true
		}
		return false
	})
	if b, err := os.ReadFile(pidPath + ".oldbin"); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(oldPid) {
		t.Errorf("pid.oldbin: %q %v", b, err)
	}
	np := int(newPid.Load())
	waitFor("the new binary never answered", 20*time.Second, func() bool { return seen(np) })

	// QUIT the old one: it stops accepting, drains and exits.
	if err := edge.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _, _ = edge.cmd.Process.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the old binary did not exit after QUIT")
	}
	mu.Lock()
	before := pids[strconv.Itoa(np)]
	mu.Unlock()
	waitFor("no responses after the old binary exited", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return pids[strconv.Itoa(np)] > before+20
	})
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d connections failed during the upgrade: %v", failures.Load(), total.Load(), errs)
	}
	if _, err := os.Stat(pidPath + ".oldbin"); !os.IsNotExist(err) {
		t.Errorf("pid.oldbin left behind: %v", err)
	}
	if b, _ := os.ReadFile(pidPath); strings.TrimSpace(string(b)) != strconv.Itoa(np) {
		t.Errorf("pid file after the upgrade: %q, want %d", b, np)
	}
	// The new process still answers, alone, on every socket (the old one
	// did not unlink the unix socket's path when it exited).
	if r := roundTrip(t, edge.Addr, get("/"), false); strings.TrimSpace(string(r.Body)) != strconv.Itoa(np) {
		t.Errorf("after the upgrade: %d %q", r.Status, r.Body)
	}
	uc, err := net.Dial("unix", filepath.Join(edge.Dir, "edge.sock"))
	if err != nil {
		t.Fatalf("unix socket after the upgrade: %v", err)
	}
	_ = uc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(uc, get("/"))
	if r := readReply(uc, newReader(uc), false); strings.TrimSpace(string(r.Body)) != strconv.Itoa(np) {
		t.Errorf("unix socket after the upgrade: %d %q %v", r.Status, r.Body, r.Err)
	}
	uc.Close()
	time.Sleep(50 * time.Millisecond)
	notesMu.Lock()
	got := strings.Join(notes, "|")
	notesMu.Unlock()
	if !strings.HasPrefix(got, "READY=1") || !strings.Contains(got, fmt.Sprintf("MAINPID=%d\nREADY=1", np)) || strings.Contains(got, "STOPPING") {
		t.Errorf("sd_notify messages: %q", got)
	}
	t.Logf("%d connections, responses by pid: %v", total.Load(), pids)
}

// sslListenAddr finds the address of the "listen ... ssl" line.
func sslListenAddr(t *testing.T, conf string) string {
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "listen" && f[2] == "ssl;" {
			return f[1]
		}
	}
	t.Fatal("no ssl listen in the config")
	return ""
}

// A new binary that fails to start (here: the config was broken meanwhile)
// leaves the old one serving, with its pid file back.
func TestBinaryUpgradeFails(t *testing.T) {
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "localhost")
	edge := start(t, "edgeproxy", upgradeConf, docs)
	pidPath := filepath.Join(edge.Dir, "edge.pid")
	cf := filepath.Join(edge.Dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte("events {} http { bogus; }"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := edge.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(edge.cmd.Process.Pid)
	// The pid file goes to .oldbin, then comes back when the child exits.
	deadline := time.Now().Add(20 * time.Second)
	for sawAside := false; ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(pidPath + ".oldbin"); err == nil {
			sawAside = true
		}
		b, err := os.ReadFile(pidPath)
		if err == nil && strings.TrimSpace(string(b)) == me {
			if _, err := os.Stat(pidPath + ".oldbin"); os.IsNotExist(err) && (sawAside || time.Now().After(deadline.Add(-15*time.Second))) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file not restored: %q %v", b, err)
		}
	}
	if r := roundTrip(t, edge.Addr, get("/"), false); r.Status != 200 || strings.TrimSpace(string(r.Body)) != me {
		t.Fatalf("old binary after a failed upgrade: %d %q", r.Status, r.Body)
	}
}

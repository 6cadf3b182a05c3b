package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type serverKind int

const (
	kindNginx serverKind = iota
	kindEdgeproxy
)

// serverSide is one of the two servers compared (A = edgeproxy, B = nginx;
// in -b-nginx mode both are nginx).
type serverSide struct {
	label   string
	kind    serverKind
	bin     string
	pidName string // pid file name inside the temp dir (default by kind)
}

func (s serverSide) pidFile(tmp string) string {
	name := s.pidName
	if name == "" {
		if s.kind == kindEdgeproxy {
			name = "edgeproxy.pid"
		} else {
			name = "nginx.pid"
		}
	}
	return filepath.Join(tmp, name)
}

// argv is the foreground command line. Both binaries take the same -p/-c/-g
// flags; nginx additionally gets error_log so nothing goes to /var/log.
func (s serverSide) argv(tmp string, pin bool, nice int) []string {
	conf := filepath.Join(tmp, "nginx.conf")
	var g string
	if s.kind == kindEdgeproxy {
		g = fmt.Sprintf("daemon off; pid %s;", s.pidFile(tmp))
	} else {
		g = fmt.Sprintf("daemon off; pid %s; error_log %s;", s.pidFile(tmp), filepath.Join(tmp, "error.log"))
	}
	argv := []string{s.bin, "-p", tmp, "-c", conf, "-g", g}
	if pin {
		// taskset execs the server, so the pid we track is the server's.
		argv = append([]string{"taskset", "-c", "0"}, argv...)
	}
	return withNice(argv, nice)
}

// withNice prefixes `nice -n N` (nice execs, so the tracked pid stays the
// server's).
func withNice(argv []string, nice int) []string {
	if nice == 0 {
		return argv
	}
	return append([]string{"nice", "-n", strconv.Itoa(nice)}, argv...)
}

// configTest runs `BIN -t -p TMP -c TMP/nginx.conf` (bounded) and returns its
// output as the error when it fails.
func (s serverSide) configTest(tmp string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-t", "-p", tmp, "-c", filepath.Join(tmp, "nginx.conf")}
	if s.kind == kindNginx {
		args = append(args, "-g", "error_log "+filepath.Join(tmp, "error.log")+";")
	}
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -t failed (%v): %s", s.label, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// start launches the server in the foreground and waits until its port
// accepts connections.
func (s serverSide) start(tmp string, port int, pin bool, nice int) (*proc, error) {
	logPath := filepath.Join(tmp, strings.NewReplacer("(", "-", ")", "").Replace(s.label)+".out")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own copy
	p, err := startProc(s.label, s.argv(tmp, pin, nice), tmp, logf, logf, syscall.SIGTERM, nice)
	if err != nil {
		return nil, err
	}
	if err := waitPort(port, p, 10*time.Second); err != nil {
		p.stop(3 * time.Second)
		return nil, fmt.Errorf("%s: %v; output: %s", s.label, err, tailFile(logPath, 2000))
	}
	return p, nil
}

// waitPort polls until 127.0.0.1:port accepts a TCP connection, the process
// exits, or the timeout passes.
func waitPort(port int, p *proc, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("exited before listening (%v)", p.waitErr)
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("port %d not accepting after %v", port, timeout)
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// startBackend runs this same binary in -backend mode (it inherits the
// harness's CPU 1 pinning, so it shares a core with wrk and never competes
// with the server under test) and returns its port.
func startBackend(tmp string, nice int) (*proc, int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, 0, err
	}
	defer pr.Close()
	logf, err := os.Create(filepath.Join(tmp, "backend.out"))
	if err != nil {
		pw.Close()
		return nil, 0, err
	}
	defer logf.Close()
	p, err := startProc("backend", []string{self, "-backend", "-backend-addr", "127.0.0.1:0"}, tmp, pw, logf, syscall.SIGKILL, nice)
	pw.Close()
	if err != nil {
		return nil, 0, err
	}
	type res struct {
		port int
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := bufio.NewReader(pr).ReadString('\n')
		if err != nil {
			ch <- res{err: fmt.Errorf("backend did not report its address: %v", err)}
			return
		}
		_, addr, _ := strings.Cut(strings.TrimSpace(line), "LISTENING ")
		_, ps, err := net.SplitHostPort(addr)
		if err != nil {
			ch <- res{err: fmt.Errorf("backend: bad line %q", line)}
			return
		}
		port, err := strconv.Atoi(ps)
		ch <- res{port: port, err: err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			p.stop(time.Second)
			return nil, 0, r.err
		}
		if err := waitPort(r.port, p, 5*time.Second); err != nil {
			p.stop(time.Second)
			return nil, 0, err
		}
		return p, r.port, nil
	case <-time.After(10 * time.Second):
		p.stop(time.Second)
		return nil, 0, fmt.Errorf("backend did not start within 10s")
	}
}

// gunicornApp is the Flask app of the proxygunicorn scenario: the same
// 100 B and 10 KiB bodies as the Go backend.
const gunicornApp = `from flask import Flask, Response
app = Flask(__name__)
B100 = b"b" * 100
B10K = b"k" * 10240

@app.route("/10k")
def k10():
    return Response(B10K, mimetype="text/plain")

@app.route("/", defaults={"p": ""})
@app.route("/<path:p>")
def b100(p):
    return Response(B100, mimetype="text/plain")
`

// startGunicorn runs the Flask app under Gunicorn (2 sync workers, as a
// small edge host would) on a free loopback port.
func startGunicorn(tmp string, nice int) (*proc, int, error) {
	bin, err := exec.LookPath("gunicorn")
	if err != nil {
		return nil, 0, fmt.Errorf("gunicorn not installed (make test installs it)")
	}
	if err := os.WriteFile(filepath.Join(tmp, "benchapp.py"), []byte(gunicornApp), 0o644); err != nil {
		return nil, 0, err
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	logf, err := os.Create(filepath.Join(tmp, "gunicorn.out"))
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	p, err := startProc("gunicorn", []string{bin, "-w", "2", "-b", fmt.Sprintf("127.0.0.1:%d", port), "--chdir", tmp, "benchapp:app"}, tmp, logf, logf, syscall.SIGKILL, nice)
	if err != nil {
		return nil, 0, err
	}
	if err := waitPort(port, p, 15*time.Second); err != nil {
		p.stop(time.Second)
		return nil, 0, err
	}
	return p, port, nil
}

// startRedis runs a throwaway redis-server on a free loopback port (the
// fleet scenarios).
func startRedis(tmp string, nice int) (*proc, int, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, 0, fmt.Errorf("redis-server not installed (make test installs it)")
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	logf, err := os.Create(filepath.Join(tmp, "redis.out"))
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	p, err := startProc("redis", []string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp},
		tmp, logf, logf, syscall.SIGKILL, nice)
	if err != nil {
		return nil, 0, err
	}
	if err := waitPort(port, p, 10*time.Second); err != nil {
		p.stop(time.Second)
		return nil, 0, err
	}
	return p, port, nil
}

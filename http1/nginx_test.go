package http1

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const nginxBin = "/usr/sbin/nginx"

var (
	ngxOnce sync.Once
	ngxAddr string // location / { return 200 "ok"; }
	ngxEcho string // echoes $uri, $args, $host, $request_uri, $arg_a
	ngxCmd  *exec.Cmd
	ngxDir  string
	ngxErr  error
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNginx runs nginx 1.22 on loopback for differential tests, once per
// test binary; it is stopped by TestMain.
func startNginx(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx not installed")
	}
	ngxOnce.Do(func() {
		dir, err := os.MkdirTemp("", "http1-nginx")
		if err != nil {
			ngxErr = err
			return
		}
		ngxDir = dir
		os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
		p1, err1 := freePort()
		p2, err2 := freePort()
		if err1 != nil || err2 != nil {
			ngxErr = fmt.Errorf("ports: %v %v", err1, err2)
			return
		}
		conf := fmt.Sprintf(`worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  server_tokens off;
  server { listen 127.0.0.1:%d; location / { return 200 "ok"; } }
  server { listen 127.0.0.1:%d;
    location / { return 200 "uri=[$uri] args=[$args] host=[$host] ru=[$request_uri] a=[$arg_a]"; } }
}
`, p1, p2)
		cf := filepath.Join(dir, "nginx.conf")
		if ngxErr = os.WriteFile(cf, []byte(conf), 0o644); ngxErr != nil {
			return
		}
		cmd := exec.Command(nginxBin, "-p", dir+"/", "-c", cf, "-g",
			"daemon off; pid "+dir+"/nginx.pid; error_log stderr crit;")
		if ngxErr = cmd.Start(); ngxErr != nil {
			return
		}
		ngxCmd = cmd
		ngxAddr = "127.0.0.1:" + strconv.Itoa(p1)
		ngxEcho = "127.0.0.1:" + strconv.Itoa(p2)
		for i := 0; i < 100; i++ { // bounded wait for the listener
			c, err := net.Dial("tcp", ngxEcho)
			if err == nil {
				c.Close()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		ngxErr = fmt.Errorf("nginx did not start")
	})
	if ngxErr != nil {
		t.Skipf("nginx unavailable: %v", ngxErr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ngxCmd != nil {
		// SIGTERM, not SIGKILL: the master must live to stop its workers.
		ngxCmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { ngxCmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			ngxCmd.Process.Kill()
			<-waited
		}
	}
	if ngxDir != "" {
		os.RemoveAll(ngxDir)
	}
	os.Exit(code)
}

// ngxRoundTrip sends raw bytes to nginx and returns the whole response.
func ngxRoundTrip(t testing.TB, addr string, raw []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(io.LimitReader(c, 1<<20))
	return out
}

// ngxStatus returns the status code nginx answers to raw, or 0 if nginx
// sent nothing (an HTTP/0.9 reply has no status line either).
func ngxStatus(t testing.TB, raw []byte) int {
	out := ngxRoundTrip(t, ngxAddr, raw)
	if !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) || len(out) < 12 {
		return 0
	}
	n, _ := strconv.Atoi(string(out[9:12]))
	return n
}

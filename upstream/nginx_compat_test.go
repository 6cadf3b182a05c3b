package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const nginxBin = "/usr/sbin/nginx"

// startNginx runs the real nginx in front of the given config body (the
// inside of `http {}`) on a free loopback port and returns that port.
func startNginx(t *testing.T, httpConf func(port int) string) int {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode")
	}
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // workers may run as nobody when we are root
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`worker_processes 1;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/cb;
    proxy_temp_path %[1]s/pt;
    fastcgi_temp_path %[1]s/ft;
    uwsgi_temp_path %[1]s/ut;
    scgi_temp_path %[1]s/st;
%[2]s
}
`, dir, httpConf(port))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-c", confPath,
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start nginx:", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return port
		}
		select {
		case <-exited:
			t.Skipf("nginx exited: %s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("nginx did not start: %s", stderr.String())
	return 0
}

// nginxGet sends one HTTP/1.0 request to nginx from the given loopback
// source address (Linux routes all of 127/8 locally, so ip_hash sees
// distinct /24s) and returns the body, i.e. the backend identity.
func nginxGet(t *testing.T, port int, src, path string) string {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("dial nginx from %s: %v", src, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: nginx.test\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read nginx response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("nginx %s: status %d %s", path, resp.StatusCode, body)
	}
	return string(body)
}

// TestAgainstRealNginx runs nginx 1.22 and this package side by side over
// the same Go backends and asserts identical server choices for weighted
// round robin, ip_hash, hash and hash consistent.
func TestAgainstRealNginx(t *testing.T) {
	var be [3]*backend
	for i := range be {
		be[i] = newBackend(t, string(rune('a'+i)), nil)
	}
	a, b, c := be[0].addr, be[1].addr, be[2].addr
	port := startNginx(t, func(port int) string {
		return fmt.Sprintf(`
    upstream wrr { server %[1]s weight=5; server %[2]s; server %[3]s; }
    upstream iph { ip_hash; server %[1]s; server %[2]s; server %[3]s; }
    upstream hsh { hash $arg_k; server %[1]s; server %[2]s; server %[3]s weight=2; }
    upstream chs { hash $arg_k consistent; server %[1]s; server %[2]s weight=2; server %[3]s; }
    server {
        listen 127.0.0.1:%[4]d;
        location /wrr { proxy_pass http://wrr; }
        location /iph { proxy_pass http://iph; }
        location /hsh { proxy_pass http://hsh; }
        location /chs { proxy_pass http://chs; }
    }`, a, b, c, port)
	})
	ids := map[string]string{a: "a", b: "b", c: "c"}
	ours := func(g *Group, key string, ip netip.Addr) string {
		var tr Tried
		p, err := g.Pick([]byte(key), ip, &tr)
		if err != nil {
			t.Fatal(err)
		}
		g.Done(p, false)
		return ids[p.Addr()]
	}

	t.Run("weighted_round_robin", func(t *testing.T) {
		specs := servers(a, b, c)
		specs[0].Weight = 5
		g := mustGroup(t, GroupSpec{Name: "wrr", Servers: specs})
		var got, want strings.Builder
		for i := 0; i < 70; i++ {
			got.WriteString(nginxGet(t, port, "127.0.0.1", "/wrr"))
			want.WriteString(ours(g, "", netip.Addr{}))
		}
		if got.String() != want.String() {
			t.Fatalf("nginx %s\nours  %s", got.String(), want.String())
		}
		if !strings.HasPrefix(got.String(), "aabacaa") {
			t.Fatalf("nginx sequence %s", got.String())
		}
	})

	t.Run("ip_hash", func(t *testing.T) {
		g := mustGroup(t, GroupSpec{Name: "iph", Servers: servers(a, b, c), Balance: IPHash})
		srcs := []string{"127.0.0.1", "127.0.1.1", "127.1.0.1", "127.5.6.7", "127.200.3.1",
			"127.9.9.9", "127.17.4.2", "127.33.0.250", "127.250.250.1", "127.3.2.1"}
		used := map[string]bool{}
		for _, src := range srcs {
			n := nginxGet(t, port, src, "/iph")
			o := ours(g, "", netip.MustParseAddr(src))
			if n != o {
				t.Errorf("client %s: nginx → %s, ours → %s", src, n, o)
			}
			used[n] = true
		}
		if len(used) < 2 {
			t.Fatalf("test addresses all map to one server: %v", used)
		}
	})

	t.Run("hash", func(t *testing.T) {
		specs := servers(a, b, c)
		specs[2].Weight = 2
		g := mustGroup(t, GroupSpec{Name: "hsh", Servers: specs, Balance: Hash})
		for i := 0; i < 40; i++ {
			key := fmt.Sprintf("user%d", i)
			if n, o := nginxGet(t, port, "127.0.0.1", "/hsh?k="+key), ours(g, key, netip.Addr{}); n != o {
				t.Errorf("key %s: nginx → %s, ours → %s", key, n, o)
			}
		}
	})

	t.Run("hash_consistent", func(t *testing.T) {
		specs := servers(a, b, c)
		specs[1].Weight = 2
		g := mustGroup(t, GroupSpec{Name: "chs", Servers: specs, Balance: Hash, HashConsistent: true})
		for i := 0; i < 40; i++ {
			key := fmt.Sprintf("/item/%d", i)
			if n, o := nginxGet(t, port, "127.0.0.1", "/chs?k="+key), ours(g, key, netip.Addr{}); n != o {
				t.Errorf("key %s: nginx → %s, ours → %s", key, n, o)
			}
		}
	})
}

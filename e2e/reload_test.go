package e2e

import (
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

const reloadConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    proxy_cache_path {{.Tmp}}/cache keys_zone=c:1m;
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location / { return 200 "VERSION\n"; }
        location /limited { limit_req zone=one; }
        location /cached/ {
            proxy_pass http://APP/api/;
            proxy_cache c;
            proxy_cache_valid 200 10m;
            add_header X-Proxy-Cache $upstream_cache_status;
        }
    }
}
`

// SIGHUP reloads under keep-alive load: no request fails, responses switch
// to the new config, an invalid config is refused while the old one keeps
// serving, and rate-limit and cache state survive.
func TestReloadUnderLoad(t *testing.T) {
	docs := t.TempDir()
	if err := os.WriteFile(filepath.Join(docs, "limited"), []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := startCountingApp(t)
	conf := strings.ReplaceAll(reloadConf, "APP", app.addr)
	edge := start(t, "edgeproxy", strings.ReplaceAll(conf, "VERSION", "A"), docs)
	cf := filepath.Join(edge.Dir, "nginx.conf")
	rendered, _ := os.ReadFile(cf)
	writeVersion := func(v string) {
		if err := os.WriteFile(cf, []byte(strings.Replace(string(rendered), `"A\n"`, `"`+v+`\n"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if r := roundTrip(t, edge.Addr, get("/limited"), false); r.Status != 200 {
		t.Fatalf("first limited request: %d", r.Status)
	}
	if r := roundTrip(t, edge.Addr, get("/cached/x"), false); r.Header.Get("X-Proxy-Cache") != "MISS" {
		t.Fatalf("first cached request: %q", r.Header.Get("X-Proxy-Cache"))
	}

	var failures, total atomic.Int64
	var seen sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", edge.Addr)
			if err != nil {
				failures.Add(1)
				return
			}
			defer func() { c.Close() }()
			br := newReader(c)
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
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
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
				seen.Store(string(b), true)
				if resp.Close {
					// keepalive_requests reached: reconnect, as clients do.
					c.Close()
					if c, err = net.Dial("tcp", edge.Addr); err != nil {
						failures.Add(1)
						return
					}
					br = newReader(c)
				}
			}
		}()
	}
	// Let the clients get going on version A first (bounded wait).
	for deadline := time.Now().Add(5 * time.Second); total.Load() < 8 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	versions := []string{"B", "BROKEN", "C", "BROKEN", "D"}
	for i := 0; i < 20; i++ {
		v := versions[i%len(versions)]
		if v == "BROKEN" {
			_ = os.WriteFile(cf, []byte("events {} http { server { listen 127.0.0.1:1; bogus_directive; } }"), 0o644)
		} else {
			writeVersion(v)
		}
		if err := edge.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
		if v == "BROKEN" {
			// The previous config keeps serving.
			if r := roundTrip(t, edge.Addr, get("/"), false); r.Status != 200 || strings.TrimSpace(string(r.Body)) == "" {
				t.Fatalf("after a broken reload: %d %q", r.Status, r.Body)
			}
		}
	}
	writeVersion("FINAL")
	_ = edge.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || total.Load() == 0 {
		t.Fatalf("%d failed of %d requests during reloads", failures.Load(), total.Load())
	}
	if r := roundTrip(t, edge.Addr, get("/"), false); string(r.Body) != "FINAL\n" {
		t.Fatalf("after the last reload: %q", r.Body)
	}
	for _, v := range []string{"A\n", "B\n", "C\n", "D\n"} {
		if _, ok := seen.Load(v); !ok {
			t.Errorf("keep-alive clients never saw version %q", v)
		}
	}
	// State carried over: the limit is still exhausted, the entry still cached.
	if r := roundTrip(t, edge.Addr, get("/limited"), false); r.Status != 503 {
		t.Errorf("limit_req state lost across reloads: %d", r.Status)
	}
	if r := roundTrip(t, edge.Addr, get("/cached/x"), false); r.Header.Get("X-Proxy-Cache") != "HIT" {
		t.Errorf("cache emptied by reload: %q", r.Header.Get("X-Proxy-Cache"))
	}
}

package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisServer runs a throwaway redis-server on a free loopback port.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T, port int) *redisServer {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (make test installs it)")
	}
	if port == 0 {
		port = freePort(t)
	}
	r := &redisServer{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.cmd = exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", r.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(end) {
			t.Fatalf("redis-server did not start: %v", err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) stop() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

const fleetConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    limit_req_zone $binary_remote_addr zone=login:1m rate=5r/s redis=REDIS;
    limit_req_zone $binary_remote_addr zone=local:1m rate=5r/s;
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        # (return would answer before limit_req runs, as in nginx)
        location /fleet { limit_req zone=login burst=10 nodelay; }
        location /local { limit_req zone=local burst=10 nodelay; }
        location = /metrics { metrics; }
    }
}
`

func fleetDocs(t *testing.T) string {
	d := t.TempDir()
	for _, f := range []string{"fleet", "local"} {
		if err := writeFile(d+"/"+f, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// hammer sends requests to the nodes in turn, as fast as one client can,
// for d, and returns how many were accepted (200), rejected (503) and
// anything else, and the slowest answer.
func hammer(t *testing.T, nodes []*server, path string, d time.Duration) (ok, rejected, other int, slowest time.Duration) {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		t0 := time.Now()
		status := 0
		if resp, err := client.Get("http://" + nodes[i%len(nodes)].Addr + path); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		if el := time.Since(t0); el > slowest {
			slowest = el
		}
		switch status {
		case 200:
			ok++
		case 503:
			rejected++
		default:
			other++
		}
		time.Sleep(2 * time.Millisecond)
	}
	return
}

// Three edgeproxy nodes share one Redis: a 5 r/s, burst 10 zone holds
// fleet-wide (within the documented tolerance) where the same zone without
// redis= lets each node pass its own 5 r/s; with Redis stopped the nodes
// keep limiting locally with no errors and no stall, and fleet-wide
// limiting comes back when Redis does.
func TestFleetRateLimit(t *testing.T) {
	port := freePort(t)
	rd := startRedis(t, port)
	conf := strings.ReplaceAll(fleetConf, "REDIS", rd.addr)
	docs := fleetDocs(t)
	var nodes []*server
	for i := 0; i < 3; i++ {
		nodes = append(nodes, start(t, "edgeproxy", conf, docs))
	}
	const d = 3 * time.Second
	// Without redis=: each node alone, (burst 10 + 1) + 5 r/s each.
	localOK, _, other, _ := hammer(t, nodes, "/local", d)
	// With redis=: the whole fleet shares one bucket.
	fleetOK, fleetRej, other2, _ := hammer(t, nodes, "/fleet", d)
	t.Logf("over %v at ~150 req/s across 3 nodes: local zone accepted %d, fleet zone accepted %d (rejected %d)", d, localOK, fleetOK, fleetRej)
	if other+other2 != 0 {
		t.Fatalf("unexpected statuses: %d, %d", other, other2)
	}
	// One bucket: 11 + 5×3 = 26; tolerance: every node may spend the
	// burst before the first sync, plus the rate over one interval each.
	if fleetOK > 3*11+5*3+6 {
		t.Errorf("fleet zone accepted %d requests in %v; want at most ~%d (one 5 r/s burst 10 bucket, plus tolerance)", fleetOK, d, 3*11+5*3+6)
	}
	if localOK < 3*(11+5*3)-6 {
		t.Errorf("local zone accepted only %d; each node should pass its own burst and rate", localOK)
	}
	if fleetOK >= localOK-20 {
		t.Errorf("fleet limiting makes no difference: %d vs %d", fleetOK, localOK)
	}

	// Redis goes away: local limiting goes on, nothing stalls or fails.
	rd.stop()
	time.Sleep(3 * time.Second) // the buckets drain
	downOK, _, other3, slowest := hammer(t, nodes, "/fleet", d)
	t.Logf("Redis down: accepted %d, slowest answer %v", downOK, slowest)
	if other3 != 0 {
		t.Errorf("%d requests failed while Redis was down", other3)
	}
	if slowest > 500*time.Millisecond {
		t.Errorf("a request took %v while Redis was down", slowest)
	}
	if downOK < 3*(11+5*3)-10 {
		t.Errorf("with Redis down each node should limit locally; accepted %d", downOK)
	}
	// The metrics endpoint says so.
	if m := scrape(t, nodes[0]); !strings.Contains(m, `edgeproxy_fleet_redis_up{kind="limit_req",zone="login"} 0`) ||
		strings.Contains(m, `edgeproxy_fleet_sync_failures_total{zone="login"} 0`) {
		t.Errorf("metrics while Redis is down:\n%s", grepLines(m, "edgeproxy_fleet_"))
	}

	// Redis comes back on the same address: fleet-wide limiting resumes.
	startRedis(t, port)
	time.Sleep(3 * time.Second) // reconnect, buckets drain
	backOK, _, other4, _ := hammer(t, nodes, "/fleet", d)
	t.Logf("Redis back: accepted %d", backOK)
	if other4 != 0 || backOK > 3*11+5*3+6 {
		t.Errorf("after Redis came back: accepted %d (other %d); want fleet-wide limiting again", backOK, other4)
	}
	if m := scrape(t, nodes[1]); !strings.Contains(m, `edgeproxy_fleet_redis_up{kind="limit_req",zone="login"} 1`) ||
		strings.Contains(m, `edgeproxy_fleet_charged_requests_total{zone="login"} 0`) {
		t.Errorf("metrics after Redis came back:\n%s", grepLines(m, "edgeproxy_fleet_"))
	}
}

func scrape(t *testing.T, s *server) string {
	resp, err := http.Get("http://" + s.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The fleet mode never makes a request wait: with Redis unreachable from
// the start (nothing listens), requests are answered at once.
func TestFleetRedisUnreachable(t *testing.T) {
	conf := strings.ReplaceAll(fleetConf, "REDIS", deadAddr(t))
	s := start(t, "edgeproxy", conf, fleetDocs(t))
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				t0 := time.Now()
				status := 0
				if resp, err := client.Get("http://" + s.Addr + "/fleet"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				el := time.Since(t0)
				mu.Lock()
				if el > worst {
					worst = el
				}
				mu.Unlock()
				if status != 200 && status != 503 {
					t.Errorf("status %d", status)
				}
			}
		}()
	}
	wg.Wait()
	if worst > 500*time.Millisecond {
		t.Errorf("slowest answer %v with Redis unreachable", worst)
	}
}

// A TLS session ticket issued by one node resumes on another when both
// share their ticket keys through Redis (ssl_session_ticket_key
// redis:ADDR), and not between nodes that do not.
func TestFleetTicketKeys(t *testing.T) {
	rd := startRedis(t, 0)
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "example.com")
	shared := "ssl_session_ticket_key redis:" + rd.addr + ";"
	a := sessionServer(t, "edgeproxy", docs, shared)
	b := sessionServer(t, "edgeproxy", docs, shared)
	lone := sessionServer(t, "edgeproxy", docs, "")
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if ok, body := resumes(t, a, b, ver); !ok || body != "reused=r" {
			t.Errorf("TLS %x: a ticket from node A did not resume on node B (%v, %q)", ver, ok, body)
		}
		if ok, _ := resumes(t, a, lone, ver); ok {
			t.Errorf("TLS %x: resumed on a node outside the fleet", ver)
		}
	}
}

const fleetPurgeConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    proxy_cache_path {{.Tmp}}/cache keys_zone=fz:10m redis=REDIS;
    server {
        listen 127.0.0.1:{{.Port}};
        location /api/ {
            proxy_pass http://APP;
            proxy_cache fz;
            proxy_cache_valid 200 10m;
            proxy_cache_key $uri;
            add_header X-Proxy-Cache $upstream_cache_status;
            proxy_cache_purge PURGE from 127.0.0.1;
        }
    }
}
`

// A purge on one node removes the entry on every node sharing the Redis
// (proxy_cache_path ... redis=): the next request on B and C is a MISS that
// reaches the app again; a prefix purge travels too.
func TestFleetPurge(t *testing.T) {
	rd := startRedis(t, 0)
	app := startCountingApp(t)
	conf := strings.NewReplacer("REDIS", rd.addr, "APP", app.addr).Replace(fleetPurgeConf)
	var nodes []*server
	for i := 0; i < 3; i++ {
		nodes = append(nodes, start(t, "edgeproxy", conf, t.TempDir()))
	}
	fill := func(path string) {
		for i, n := range nodes {
			for _, want := range []string{"MISS", "HIT"} {
				if _, got, _ := requestFrom(t, n.Addr, "127.0.0.1", "GET", path); got != want {
					t.Fatalf("node %d %s: %s, want %s", i, path, got, want)
				}
			}
		}
	}
	fill("/api/one")
	fill("/api/pre/a")
	fill("/api/pre/b")
	if st, _, _ := requestFrom(t, nodes[0].Addr, "127.0.0.1", "PURGE", "/api/one"); st != 200 {
		t.Fatalf("PURGE on node A: %d", st)
	}
	if st, _, _ := requestFrom(t, nodes[1].Addr, "127.0.0.1", "PURGE", "/api/pre/*"); st != 200 {
		t.Fatalf("prefix PURGE on node B: %d", st)
	}
	time.Sleep(300 * time.Millisecond) // pub/sub delivery
	for i, n := range nodes {
		for _, path := range []string{"/api/one", "/api/pre/a", "/api/pre/b"} {
			if _, got, _ := requestFrom(t, n.Addr, "127.0.0.1", "GET", path); got != "MISS" {
				t.Errorf("node %d %s after the fleet purge: %s, want MISS", i, path, got)
			}
		}
	}
}

const fleetConnConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    limit_conn_zone $binary_remote_addr zone=fc:1m redis=REDIS;
    limit_conn_zone $binary_remote_addr zone=lc:1m;
    server {
        listen 127.0.0.1:{{.Port}};
        location /fleet/ { limit_conn fc 2; proxy_pass http://APP/app/; proxy_read_timeout 10s; }
        location /local/ { limit_conn lc 2; proxy_pass http://APP/app/; proxy_read_timeout 10s; }
    }
}
`

// limit_conn_zone ... redis= counts requests in progress across the fleet:
// with two slow requests in progress on node A, a third on node B is
// refused (503) under "limit_conn fc 2", and passes under a local zone;
// once they end, node B admits again.
func TestFleetConnLimit(t *testing.T) {
	rd := startRedis(t, 0)
	app := startBackend(t, "a") // /app/slow takes 1.5 s
	conf := strings.NewReplacer("REDIS", rd.addr, "APP", app.addr).Replace(fleetConnConf)
	a := start(t, "edgeproxy", conf, t.TempDir())
	b := start(t, "edgeproxy", conf, t.TempDir())
	client := &http.Client{Timeout: 10 * time.Second}
	status := func(s *server, path string) int {
		resp, err := client.Get("http://" + s.Addr + path)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		prefix string
		want   int
	}{{"/fleet/", 503}, {"/local/", 200}} {
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st := status(a, tc.prefix+"slow"); st != 200 {
					t.Errorf("%s slow request on A: %d", tc.prefix, st)
				}
			}()
		}
		time.Sleep(600 * time.Millisecond) // A's counts reach Redis and B
		if st := status(b, tc.prefix+"x"); st != tc.want {
			t.Errorf("%sx on B with 2 requests in progress on A: %d, want %d", tc.prefix, st, tc.want)
		}
		wg.Wait()
		time.Sleep(300 * time.Millisecond)
		if st := status(b, tc.prefix+"x"); st != 200 {
			t.Errorf("%sx on B once A's requests ended: %d, want 200", tc.prefix, st)
		}
	}
}

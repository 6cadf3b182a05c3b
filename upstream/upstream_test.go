package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// backend is a loopback Go HTTP server that answers with its identity.
type backend struct {
	id   string
	srv  *httptest.Server
	addr string
	hits atomic.Int64
}

func newBackend(t *testing.T, id string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{id: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", id)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, id)
	}))
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.srv.Close)
	return b
}

// deadAddr returns a loopback address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func mustGroup(t testing.TB, spec GroupSpec) *Group {
	t.Helper()
	g, err := NewGroup(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

type reply struct {
	status int
	body   string
	addrs  string
	codes  string
	err    error
	res    Result
}

// send runs one request through g like the proxy would and returns what a
// client would see plus the $upstream_* values.
func send(t *testing.T, g *Group, method, path string, nu *NextUpstream) reply {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.SetHost("app.test")
	if method == "POST" {
		req.SetBodyString("payload")
	}
	var r reply
	r.err = g.Do(context.Background(), req, resp, nu, nil, netip.Addr{}, &r.res)
	r.status = r.res.Status
	if r.err == nil {
		r.body = string(resp.Body())
	}
	r.addrs = string(r.res.AppendUpstreamAddr(nil))
	r.codes = string(r.res.AppendUpstreamStatus(nil))
	return r
}

func servers(addrs ...string) []ServerSpec {
	out := make([]ServerSpec, len(addrs))
	for i, a := range addrs {
		out[i] = ServerDefaults(a)
	}
	return out
}

func TestSmoothWRRSequence511(t *testing.T) {
	// ngx_http_upstream_get_peer with weights a=5 b=1 c=1 produces
	// a a b a c a a, then repeats.
	specs := servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	specs[0].Weight = 5
	g := mustGroup(t, GroupSpec{Name: "wrr", Servers: specs})
	name := map[string]string{"127.0.0.1:1": "a", "127.0.0.1:2": "b", "127.0.0.1:3": "c"}
	var got []string
	for i := 0; i < 14; i++ {
		var tr Tried
		p, err := g.Pick(nil, netip.Addr{}, &tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, name[p.Addr()])
		g.Done(p, false)
	}
	want := "a a b a c a a a a b a c a a"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("sequence %q, want %q", s, want)
	}
}

func TestWeightedSplit51Over600Requests(t *testing.T) {
	a := newBackend(t, "a", nil)
	b := newBackend(t, "b", nil)
	specs := servers(a.addr, b.addr)
	specs[0].Weight = 5
	g := mustGroup(t, GroupSpec{Name: "split", Servers: specs, Keepalive: 8})
	// Smooth WRR for 5,1: current weights (a,b) go 5,1→a; 4,2→a; 3,3→a
	// (first max wins); 2,4→b; 7,-1→a; 6,0→a; back to 0,0.
	pattern := "aaabaa"
	var seq strings.Builder
	for i := 0; i < 600; i++ {
		r := send(t, g, "GET", "/", nil)
		if r.err != nil || r.status != 200 {
			t.Fatalf("request %d: %v %d", i, r.err, r.status)
		}
		seq.WriteString(r.body)
	}
	if want := strings.Repeat(pattern, 100); seq.String() != want {
		t.Fatalf("sequence differs from nginx's smooth WRR: %q...", seq.String()[:36])
	}
	if a.hits.Load() != 500 || b.hits.Load() != 100 {
		t.Fatalf("split a=%d b=%d, want 500/100", a.hits.Load(), b.hits.Load())
	}
}

func TestIPHashNginxMapping(t *testing.T) {
	specs := servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	g := mustGroup(t, GroupSpec{Name: "iph", Servers: specs, Balance: IPHash})
	// nginx: hash = 89; per octet of the first three: (hash*113+o) % 6271;
	// server = hash % total_weight (3 servers of weight 1):
	// 192.168.1.10: (89*113+192)%6271=3978, (3978*113+168)%6271=4441,
	//               (4441*113+1)%6271=154;  154%3=1 → second server
	// 10.0.0.1:     3796, 2520, 2565;       2565%3=0 → first
	// 127.0.0.1:    3913, 3199, 4040;       4040%3=2 → third
	// 127.1.0.1:    3913, 3200, 4153;       4153%3=1 → second
	// 192.168.1.200 shares 192.168.1.0/24 with 192.168.1.10 → second.
	// IPv6 hashes all 16 bytes, and an IPv4-mapped address hashes as IPv4.
	cases := []struct {
		ip   string
		want int
	}{
		{"192.168.1.10", 1}, {"10.0.0.1", 0}, {"127.0.0.1", 2}, {"127.1.0.1", 1},
		{"192.168.1.200", 1}, {"::ffff:10.0.0.1", 0},
	}
	for _, c := range cases {
		for i := 0; i < 3; i++ { // affinity: same server every time
			var tr Tried
			p, err := g.Pick(nil, netip.MustParseAddr(c.ip), &tr)
			if err != nil {
				t.Fatal(err)
			}
			if p.Addr() != specs[c.want].Addr {
				t.Fatalf("%s → %s, want %s", c.ip, p.Addr(), specs[c.want].Addr)
			}
			g.Done(p, false)
		}
	}
	// A failed server makes nginx re-hash from the current value: the
	// client moves to another server and comes back once it recovers.
	ip := netip.MustParseAddr("10.0.0.1")
	var tr Tried
	p, _ := g.Pick(nil, ip, &tr)
	g.Done(p, true) // max_fails=1: first server out for fail_timeout
	tr = Tried{}
	p2, _ := g.Pick(nil, ip, &tr)
	if p2 == p {
		t.Fatal("ip_hash kept a failed server")
	}
	g.Done(p2, false)
}

func TestConsistentHashMinimalRemap(t *testing.T) {
	addrs := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}
	full := mustGroup(t, GroupSpec{Name: "ch", Servers: servers(addrs...), Balance: Hash, HashConsistent: true})
	less := mustGroup(t, GroupSpec{Name: "ch", Servers: servers(addrs[:3]...), Balance: Hash, HashConsistent: true})
	pick := func(g *Group, key string) string {
		var tr Tried
		p, err := g.Pick([]byte(key), netip.Addr{}, &tr)
		if err != nil {
			t.Fatal(err)
		}
		g.Done(p, false)
		return p.Addr()
	}
	const n = 4000
	moved, onRemoved := 0, 0
	perServer := map[string]int{}
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("/user/%d", i)
		before, after := pick(full, key), pick(less, key)
		perServer[before]++
		if before == addrs[3] {
			onRemoved++
			continue
		}
		if before != after {
			moved++
		}
	}
	if moved != 0 {
		t.Fatalf("%d keys not on the removed server moved", moved)
	}
	// Each server should own roughly a quarter of the keys (160 points each).
	for a, c := range perServer {
		if c < n/8 || c > n/2 {
			t.Fatalf("server %s owns %d of %d keys", a, c, n)
		}
	}
	if onRemoved == 0 {
		t.Fatal("removed server owned no keys")
	}
	// Same key, same server, every time (also across Group rebuilds).
	again := mustGroup(t, GroupSpec{Name: "ch", Servers: servers(addrs...), Balance: Hash, HashConsistent: true})
	for i := 0; i < 50; i++ {
		key := fmt.Sprintf("k%d", i)
		if pick(full, key) != pick(again, key) {
			t.Fatal("consistent hash not deterministic")
		}
	}
}

func TestLeastConnAvoidsBusyServer(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan string, 2)
	slow := func(id string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				entered <- id
				<-release
			}
			io.WriteString(w, id)
		}
	}
	a := newBackend(t, "a", slow("a"))
	b := newBackend(t, "b", slow("b"))
	g := mustGroup(t, GroupSpec{Name: "lc", Servers: servers(a.addr, b.addr), Balance: LeastConn, Keepalive: 4})
	done := make(chan reply, 1)
	go func() { done <- send(t, g, "GET", "/slow", nil) }()
	busy := <-entered
	for i := 0; i < 6; i++ {
		r := send(t, g, "GET", "/fast", nil)
		if r.err != nil || r.body == busy {
			t.Fatalf("fast request %d went to busy server %s (err %v)", i, busy, r.err)
		}
	}
	close(release)
	if r := <-done; r.err != nil || r.body != busy {
		t.Fatalf("slow request: %v %q", r.err, r.body)
	}
	// Idle again: ties are broken by round robin, both servers get traffic.
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		seen[send(t, g, "GET", "/", nil).body] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("idle least_conn did not round-robin: %v", seen)
	}
}

func TestFailoverDeadServerMarkedFailed(t *testing.T) {
	dead := deadAddr(t)
	live := newBackend(t, "live", nil)
	specs := servers(dead, live.addr)
	specs[0].MaxFails = 2
	g := mustGroup(t, GroupSpec{Name: "fo", Servers: specs})
	sawRetry := 0
	for i := 0; i < 10; i++ {
		r := send(t, g, "GET", "/", nil)
		if r.err != nil || r.status != 200 || r.body != "live" {
			t.Fatalf("request %d: %v %d %q", i, r.err, r.status, r.body)
		}
		if r.addrs == dead+", "+live.addr {
			if r.codes != "502, 200" {
				t.Fatalf("upstream_status %q", r.codes)
			}
			sawRetry++
		}
	}
	// Round robin tries the dead server on requests 1 and 2 (each retried
	// on the live one); after max_fails=2 it is out for fail_timeout.
	if sawRetry != 2 {
		t.Fatalf("dead server tried %d times, want max_fails=2", sawRetry)
	}
	st := g.State()
	if !st[0].Unavailable || st[0].Fails != 2 || st[1].Unavailable {
		t.Fatalf("state %+v", st)
	}
}

func TestAllDeadIs502ThenNoLiveUpstreams(t *testing.T) {
	d1, d2 := deadAddr(t), deadAddr(t)
	g := mustGroup(t, GroupSpec{Name: "backend", Servers: servers(d1, d2)})
	r := send(t, g, "GET", "/", nil)
	var ue *Error
	if !errors.As(r.err, &ue) || ue.Status != 502 || r.status != 502 {
		t.Fatalf("want 502 error, got %v status %d", r.err, r.status)
	}
	if r.addrs != d1+", "+d2 || r.codes != "502, 502" {
		t.Fatalf("upstream_addr %q status %q", r.addrs, r.codes)
	}
	// Both are now failed (max_fails=1): nginx says "no live upstreams" and
	// logs the upstream name.
	r = send(t, g, "GET", "/", nil)
	if !errors.Is(r.err, ErrNoLiveUpstreams) || r.status != 502 || r.addrs != "backend" || r.codes != "502" {
		t.Fatalf("got %v %d %q %q", r.err, r.status, r.addrs, r.codes)
	}
	if rt := string(r.res.AppendUpstreamResponseTime(nil)); rt != "-" {
		t.Fatalf("response time %q", rt)
	}
}

func TestTimeoutIs504AndRetriedWhenListed(t *testing.T) {
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		io.WriteString(w, "slow")
	})
	fast := newBackend(t, "fast", nil)
	g := mustGroup(t, GroupSpec{Name: "to", Servers: servers(slow.addr), ReadTimeout: 80 * time.Millisecond})
	r := send(t, g, "GET", "/", nil)
	var ue *Error
	if !errors.As(r.err, &ue) || ue.Status != 504 || r.codes != "504" {
		t.Fatalf("want 504, got %v %q", r.err, r.codes)
	}
	g2 := mustGroup(t, GroupSpec{Name: "to2", Servers: servers(slow.addr, fast.addr), ReadTimeout: 80 * time.Millisecond})
	r = send(t, g2, "GET", "/", nil)
	if r.err != nil || r.body != "fast" || r.codes != "504, 200" {
		t.Fatalf("timeout not retried: %v %q %q", r.err, r.body, r.codes)
	}
	// Timeout not listed in proxy_next_upstream → no retry, 504.
	g3 := mustGroup(t, GroupSpec{Name: "to3", Servers: servers(slow.addr, fast.addr), ReadTimeout: 80 * time.Millisecond})
	r = send(t, g3, "GET", "/", &NextUpstream{Error: true})
	if !errors.As(r.err, &ue) || ue.Status != 504 || r.addrs != slow.addr {
		t.Fatalf("want unretried 504, got %v %q", r.err, r.addrs)
	}
	if rt := string(r.res.AppendUpstreamResponseTime(nil)); !strings.HasPrefix(rt, "0.0") && !strings.HasPrefix(rt, "0.1") {
		t.Fatalf("response time %q", rt)
	}
}

// resetServer accepts connections, reads the request head and resets the
// connection without answering.
func resetServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			buf := make([]byte, 4096)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			c.Read(buf)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), &n
}

func TestPostNotRetriedAfterSend(t *testing.T) {
	rst, hits := resetServer(t)
	good := newBackend(t, "good", nil)
	mk := func() *Group {
		return mustGroup(t, GroupSpec{Name: "post", Servers: servers(rst, good.addr)})
	}
	r := send(t, mk(), "POST", "/", nil)
	var ue *Error
	if !errors.As(r.err, &ue) || ue.Status != 502 || r.addrs != rst || hits.Load() != 1 {
		t.Fatalf("POST: %v addrs %q hits %d", r.err, r.addrs, hits.Load())
	}
	if good.hits.Load() != 0 {
		t.Fatal("POST was retried on another server")
	}
	// With non_idempotent it is retried.
	r = send(t, mk(), "POST", "/", &NextUpstream{Error: true, NonIdempotent: true})
	if r.err != nil || r.body != "good" || r.codes != "502, 200" {
		t.Fatalf("POST non_idempotent: %v %q %q", r.err, r.body, r.codes)
	}
	// GET is retried.
	r = send(t, mk(), "GET", "/", nil)
	if r.err != nil || r.body != "good" {
		t.Fatalf("GET: %v %q", r.err, r.body)
	}
	// POST to a closed port was never sent, so it is retried.
	g := mustGroup(t, GroupSpec{Name: "post2", Servers: servers(deadAddr(t), good.addr)})
	r = send(t, g, "POST", "/", nil)
	if r.err != nil || r.body != "good" || r.codes != "502, 200" {
		t.Fatalf("POST after connect failure: %v %q %q", r.err, r.body, r.codes)
	}
}

func TestBackupOnlyWhenPrimariesDown(t *testing.T) {
	p1 := newBackend(t, "p1", nil)
	p2 := newBackend(t, "p2", nil)
	bk := newBackend(t, "backup", nil)
	specs := servers(p1.addr, p2.addr, bk.addr)
	specs[2].Backup = true
	g := mustGroup(t, GroupSpec{Name: "bk", Servers: specs, Keepalive: 4})
	for i := 0; i < 20; i++ {
		if r := send(t, g, "GET", "/", nil); r.err != nil || r.body == "backup" {
			t.Fatalf("backup used while primaries up: %v %q", r.err, r.body)
		}
	}
	p1.srv.Close()
	if r := send(t, g, "GET", "/", nil); r.err != nil || r.body != "p2" {
		t.Fatalf("one primary down: %v %q %q", r.err, r.body, r.addrs)
	}
	p2.srv.Close()
	// p1 is failed; p2 fails now; the primary tier is exhausted and nginx
	// moves on to the backup tier.
	r := send(t, g, "GET", "/", nil)
	if r.err != nil || r.body != "backup" {
		t.Fatalf("primaries down: %v %q %q", r.err, r.body, r.addrs)
	}
	r = send(t, g, "GET", "/", nil)
	if r.err != nil || r.body != "backup" || r.addrs != bk.addr {
		t.Fatalf("primaries failed: %v %q %q", r.err, r.body, r.addrs)
	}
	// A `down` primary is skipped outright.
	specs = servers(deadAddr(t), bk.addr)
	specs[0].Down = true
	specs[1].Backup = true
	g2 := mustGroup(t, GroupSpec{Name: "bk2", Servers: specs})
	if r := send(t, g2, "GET", "/", nil); r.err != nil || r.body != "backup" || r.addrs != bk.addr {
		t.Fatalf("down primary: %v %q %q", r.err, r.body, r.addrs)
	}
}

func TestMaxConns(t *testing.T) {
	specs := servers("127.0.0.1:1", "127.0.0.1:2")
	specs[0].MaxConns = 1
	g := mustGroup(t, GroupSpec{Name: "mc", Servers: specs})
	var t1, t2, t3 Tried
	a, _ := g.Pick(nil, netip.Addr{}, &t1)
	b, _ := g.Pick(nil, netip.Addr{}, &t2)
	c, _ := g.Pick(nil, netip.Addr{}, &t3)
	if a.Addr() != specs[0].Addr || b.Addr() != specs[1].Addr || c.Addr() != specs[1].Addr {
		t.Fatalf("picks %s %s %s: server with max_conns=1 reused while busy", a.Addr(), b.Addr(), c.Addr())
	}
	g.Done(a, false)
	g.Done(b, false)
	g.Done(c, false)

	// Through Do: a single server with max_conns=1 busy → 502.
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	be := newBackend(t, "one", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "one")
	})
	one := servers(be.addr)
	one[0].MaxConns = 1
	g2 := mustGroup(t, GroupSpec{Name: "one", Servers: one})
	done := make(chan reply, 1)
	go func() { done <- send(t, g2, "GET", "/slow", nil) }()
	<-entered
	if r := send(t, g2, "GET", "/", nil); !errors.Is(r.err, ErrNoLiveUpstreams) || r.status != 502 {
		t.Fatalf("max_conns exceeded: %v %d", r.err, r.status)
	}
	close(release)
	if r := <-done; r.err != nil || r.body != "one" {
		t.Fatalf("slow: %v", r.err)
	}
	if r := send(t, g2, "GET", "/", nil); r.err != nil || r.body != "one" {
		t.Fatalf("after release: %v", r.err)
	}
}

func TestFailTimeoutProbe(t *testing.T) {
	specs := servers("127.0.0.1:1", "127.0.0.1:2")
	specs[0].FailTimeout = 60 * time.Millisecond
	g := mustGroup(t, GroupSpec{Name: "ft", Servers: specs})
	pick := func() *Peer {
		var tr Tried
		p, err := g.Pick(nil, netip.Addr{}, &tr)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := pick()
	g.Done(a, true) // max_fails=1 → out for fail_timeout
	for i := 0; i < 4; i++ {
		p := pick()
		if p == a {
			t.Fatal("failed server picked within fail_timeout")
		}
		g.Done(p, false)
	}
	time.Sleep(80 * time.Millisecond)
	// After fail_timeout exactly one request probes it; until that probe
	// finishes the server stays out (checked was just refreshed).
	var probe *Peer
	for i := 0; i < 3 && probe == nil; i++ {
		p := pick()
		if p == a {
			probe = p
			continue
		}
		g.Done(p, false)
	}
	if probe == nil {
		t.Fatal("server not probed after fail_timeout")
	}
	for i := 0; i < 4; i++ {
		p := pick()
		if p == a {
			t.Fatal("second request sent to a server still being probed")
		}
		g.Done(p, false)
	}
	g.Done(probe, false) // probe succeeded → fails reset
	if st := g.State(); st[0].Fails != 0 || st[0].Unavailable {
		t.Fatalf("probe success did not revive: %+v", st[0])
	}
	seen := false
	for i := 0; i < 6; i++ {
		p := pick()
		seen = seen || p == a
		g.Done(p, false)
	}
	if !seen {
		t.Fatal("revived server not back in rotation")
	}
}

func TestStatusRetryAndMaxFails(t *testing.T) {
	bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		io.WriteString(w, "bad")
	})
	good := newBackend(t, "good", nil)
	nu := &NextUpstream{Error: true, Timeout: true, HTTP503: true}
	g := mustGroup(t, GroupSpec{Name: "st", Servers: servers(bad.addr, good.addr)})
	r := send(t, g, "GET", "/", nu)
	if r.err != nil || r.body != "good" || r.codes != "503, 200" {
		t.Fatalf("503 not retried: %v %q %q", r.err, r.body, r.codes)
	}
	if st := g.State(); st[0].Fails != 1 {
		t.Fatalf("retried 503 not counted as failure: %+v", st[0])
	}
	// Not listed: the 503 is relayed as is.
	g2 := mustGroup(t, GroupSpec{Name: "st2", Servers: servers(bad.addr, good.addr)})
	r = send(t, g2, "GET", "/", nil)
	if r.err != nil || r.status != 503 || r.body != "bad" {
		t.Fatalf("503 relay: %v %d %q", r.err, r.status, r.body)
	}
	// Single server: nothing to retry, the 503 is relayed.
	g3 := mustGroup(t, GroupSpec{Name: "st3", Servers: servers(bad.addr)})
	r = send(t, g3, "GET", "/", nu)
	if r.err != nil || r.status != 503 || r.codes != "503" {
		t.Fatalf("single 503: %v %d %q", r.err, r.status, r.codes)
	}
	// proxy_next_upstream_tries 1: no second attempt.
	g4 := mustGroup(t, GroupSpec{Name: "st4", Servers: servers(bad.addr, good.addr)})
	r = send(t, g4, "GET", "/", &NextUpstream{HTTP503: true, Tries: 1})
	if r.status != 503 || r.codes != "503" {
		t.Fatalf("tries=1: %d %q", r.status, r.codes)
	}
}

func TestActiveHealthCheck(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && !healthy.Load() {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "a")
	})
	b := newBackend(t, "b", nil)
	g := mustGroup(t, GroupSpec{Name: "hc", Servers: servers(a.addr, b.addr), Keepalive: 4,
		HealthCheck: &HealthSpec{Interval: 15 * time.Millisecond, URI: "/healthz", Fall: 2, Rise: 2, Timeout: time.Second}})
	waitFor := func(cond func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	healthy.Store(false)
	waitFor(func() bool { return g.State()[0].HealthDown }, "server a taken out")
	for i := 0; i < 6; i++ {
		if r := send(t, g, "GET", "/", nil); r.err != nil || r.body != "b" {
			t.Fatalf("request to unhealthy server: %v %q", r.err, r.body)
		}
	}
	healthy.Store(true)
	waitFor(func() bool { return !g.State()[0].HealthDown }, "server a back")
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		seen[send(t, g, "GET", "/", nil).body] = true
	}
	if !seen["a"] {
		t.Fatal("healthy server not back in rotation")
	}
	g.Stop() // returns promptly; Cleanup calls it again harmlessly
}

func TestStaleKeepaliveConnectionIsNotAFailure(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 30 * time.Millisecond // Gunicorn-like short keepalive
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	other := newBackend(t, "other", nil)
	g := mustGroup(t, GroupSpec{Name: "ka", Servers: servers(addr, other.addr), Keepalive: 4, KeepaliveRequests: 2})
	for i := 0; i < 6; i++ {
		r := send(t, g, "GET", "/", nil)
		if r.err != nil || strings.Contains(r.addrs, ",") {
			t.Fatalf("request %d: %v addrs %q", i, r.err, r.addrs)
		}
		if i == 1 {
			time.Sleep(100 * time.Millisecond) // backend closes the idle conn
		}
	}
	if st := g.State(); st[0].Fails != 0 {
		t.Fatalf("stale connection counted as failure: %+v", st[0])
	}
	if n := conns.Load(); n < 2 {
		t.Fatalf("connections to first server: %d", n)
	}
	// keepalive_requests=2 with 3 requests on the first server → 2 conns at
	// least; with keepalive off every request opens a connection.
	conns.Store(0)
	g2 := mustGroup(t, GroupSpec{Name: "noka", Servers: servers(addr)})
	for i := 0; i < 3; i++ {
		if r := send(t, g2, "GET", "/", nil); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("without keepalive: %d connections for 3 requests", n)
	}
}

func TestUnixSocketServer(t *testing.T) {
	path := t.TempDir() + "/app.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Skip("unix sockets unavailable:", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // no Content-Type at all
		io.WriteString(w, "unix")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g := mustGroup(t, GroupSpec{Name: "u", Servers: servers("unix:" + path)})
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/")
	req.Header.SetHost("app.test")
	var res Result
	if err := g.Do(context.Background(), req, resp, nil, nil, netip.Addr{}, &res); err != nil {
		t.Fatal(err)
	}
	if string(resp.Body()) != "unix" || string(res.AppendUpstreamAddr(nil)) != "unix:"+path {
		t.Fatalf("body %q addr %q", resp.Body(), res.AppendUpstreamAddr(nil))
	}
	if ct := resp.Header.ContentType(); len(ct) != 0 {
		t.Fatalf("fasthttp added a default Content-Type %q", ct)
	}
}

func TestNewGroupValidation(t *testing.T) {
	bad := []GroupSpec{
		{Name: "empty"},
		{Name: "onlybackup", Servers: []ServerSpec{{Addr: "127.0.0.1:1", Backup: true}}},
		{Name: "hashbackup", Balance: IPHash, Servers: []ServerSpec{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2", Backup: true}}},
		{Name: "noport", Servers: []ServerSpec{{Addr: "127.0.0.1"}}},
		{Name: "badhc", Servers: servers("127.0.0.1:1"), HealthCheck: &HealthSpec{ExpectStatus: "abc"}},
	}
	for _, s := range bad {
		if _, err := NewGroup(s); err == nil {
			t.Errorf("%s: accepted", s.Name)
		}
	}
}

func TestConcurrentDo(t *testing.T) {
	a := newBackend(t, "a", nil)
	b := newBackend(t, "b", nil)
	g := mustGroup(t, GroupSpec{Name: "cc", Servers: servers(a.addr, b.addr), Balance: LeastConn, Keepalive: 16})
	var wg sync.WaitGroup
	var fails atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if r := send(t, g, "GET", "/", nil); r.err != nil {
					fails.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if fails.Load() != 0 || a.hits.Load()+b.hits.Load() != 200 {
		t.Fatalf("fails %d hits %d", fails.Load(), a.hits.Load()+b.hits.Load())
	}
	for _, s := range g.State() {
		if s.Conns != 0 {
			t.Fatalf("conns leaked: %+v", s)
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, bal := range []Balance{RoundRobin, LeastConn, IPHash, Hash} {
		specs := servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
		specs[0].Weight = 3
		g := mustGroup(t, GroupSpec{Name: "alloc", Servers: specs, Balance: bal, HashConsistent: bal == Hash})
		ip := netip.MustParseAddr("192.168.1.10")
		key := []byte("/some/key")
		allocs := testing.AllocsPerRun(1000, func() {
			var tr Tried
			p, err := g.Pick(key, ip, &tr)
			if err != nil {
				panic(err)
			}
			g.Done(p, false)
		})
		if allocs != 0 {
			t.Errorf("%v: %.1f allocs per Pick+Done", bal, allocs)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, bal := range []Balance{RoundRobin, LeastConn, IPHash, Hash, Random} {
		b.Run(bal.String(), func(b *testing.B) {
			specs := servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
			specs[0].Weight = 5
			g := mustGroup(b, GroupSpec{Name: "bench", Servers: specs, Balance: bal, HashConsistent: bal == Hash})
			ip := netip.MustParseAddr("10.1.2.3")
			key := []byte("/api/items/42")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var tr Tried
				p, _ := g.Pick(key, ip, &tr)
				g.Done(p, false)
			}
		})
	}
}

func BenchmarkPickParallel(b *testing.B) {
	specs := servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
	g := mustGroup(b, GroupSpec{Name: "bench", Servers: specs})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var tr Tried
			p, _ := g.Pick(nil, netip.Addr{}, &tr)
			g.Done(p, false)
		}
	})
}

func BenchmarkDoLoopback(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.WriteString("ok") }}
	go s.Serve(ln)
	defer s.Shutdown()
	g := mustGroup(b, GroupSpec{Name: "bench", Servers: servers(ln.Addr().String()), Keepalive: 32})
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	req.SetRequestURI("/")
	req.Header.SetHost("app.test")
	var res Result
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := g.Do(context.Background(), req, resp, nil, nil, netip.Addr{}, &res); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRandomBalancers(t *testing.T) {
	for _, bal := range []Balance{Random, RandomTwo} {
		specs := servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
		specs[0].Weight = 2
		g := mustGroup(t, GroupSpec{Name: "rnd", Servers: specs, Balance: bal})
		count := map[string]int{}
		for i := 0; i < 2000; i++ {
			var tr Tried
			p, err := g.Pick(nil, netip.Addr{}, &tr)
			if err != nil {
				t.Fatal(err)
			}
			count[p.Addr()]++
			g.Done(p, false)
		}
		for _, s := range specs {
			if count[s.Addr] < 200 {
				t.Fatalf("%v: server %s picked %d/2000 times", bal, s.Addr, count[s.Addr])
			}
		}
		// A failed server is skipped; retries never repeat a server.
		var tr Tried
		p, _ := g.Pick(nil, netip.Addr{}, &tr)
		g.Done(p, true)
		seen := map[*Peer]bool{}
		var tr2 Tried
		for i := 0; i < 2; i++ {
			q, err := g.Pick(nil, netip.Addr{}, &tr2)
			if err != nil || q == p || seen[q] {
				t.Fatalf("%v: retry %d picked %v (failed %s) err %v", bal, i, q, p.Addr(), err)
			}
			seen[q] = true
			g.Done(q, false)
		}
		if _, err := g.Pick(nil, netip.Addr{}, &tr2); !errors.Is(err, ErrNoLiveUpstreams) {
			t.Fatalf("%v: all tried or failed, got %v", bal, err)
		}
	}
}

func TestHashRetryMovesToAnotherServer(t *testing.T) {
	specs := servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	for _, consistent := range []bool{false, true} {
		g := mustGroup(t, GroupSpec{Name: "h", Servers: specs, Balance: Hash, HashConsistent: consistent})
		key := []byte("session-42")
		var tr Tried
		first, _ := g.Pick(key, netip.Addr{}, &tr)
		g.Done(first, true)
		second, err := g.Pick(key, netip.Addr{}, &tr)
		if err != nil || second == first {
			t.Fatalf("consistent=%v: retry picked %v err %v", consistent, second, err)
		}
		g.Done(second, false)
		// The key now avoids the failed server on fresh requests too.
		var fresh Tried
		p, _ := g.Pick(key, netip.Addr{}, &fresh)
		if p == first {
			t.Fatalf("consistent=%v: failed server chosen", consistent)
		}
		g.Done(p, false)
		// Empty key → round robin, as nginx >= 1.19 does.
		fresh.Reset()
		if _, err := g.Pick(nil, netip.Addr{}, &fresh); err != nil {
			t.Fatal(err)
		}
	}
}

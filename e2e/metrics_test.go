package e2e

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const stubStatusConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        root {{.Dir}};
        location = /status { stub_status; }
        location = /old { stub_status on; }
        location /nested { stub_status; location /nested/inner { } }
    }
}
`

// stubStatusRe is nginx's page with the numbers left out.
var stubStatusRe = regexp.MustCompile(`^Active connections: \d+ \nserver accepts handled requests\n \d+ \d+ \d+ \nReading: \d+ Writing: \d+ Waiting: \d+ \n$`)

// stub_status against nginx: the byte-exact page, headers, methods, and —
// since both servers see exactly the same connections — the same numbers,
// as connections open, idle, start a request and ask again.
func TestStubStatusDifferential(t *testing.T) {
	docs := t.TempDir()
	if err := writeFile(docs+"/index.html", "hi"); err != nil {
		t.Fatal(err)
	}
	ngx, edge := pair(t, stubStatusConf, docs)

	type step struct {
		name string
		run  func(s *server, st *state) reply
	}
	steps := []step{
		{"first request on a connection", func(s *server, st *state) reply { return st.ask(t, s, "/status") }},
		{"same connection again", func(s *server, st *state) reply { return st.ask(t, s, "/status") }},
		{"after an idle connection opened", func(s *server, st *state) reply {
			st.idle = dial(t, s)
			return st.ask(t, s, "/status")
		}},
		{"after a request head started", func(s *server, st *state) reply {
			st.partial = dial(t, s)
			io.WriteString(st.partial, "GET / HTTP/1.1\r\nHost: x\r\n")
			return st.ask(t, s, "/status")
		}},
		{"after a request finished and its connection closed", func(s *server, st *state) reply {
			r := roundTrip(t, s.Addr, get("/index.html"), false)
			if r.Status != 200 {
				t.Fatalf("%s: /index.html %d", s.Name, r.Status)
			}
			return st.ask(t, s, "/status")
		}},
		{"after the idle and partial connections closed", func(s *server, st *state) reply {
			st.idle.Close()
			st.partial.Close()
			return st.ask(t, s, "/old")
		}},
		{"HEAD", func(s *server, st *state) reply {
			return st.askRaw(t, s, "HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n", true)
		}},
		{"POST is 405", func(s *server, st *state) reply {
			return st.askRaw(t, s, "POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", false)
		}},
		{"nested location does not inherit it", func(s *server, st *state) reply { return st.ask(t, s, "/nested/inner") }},
		{"the server's location answers", func(s *server, st *state) reply { return st.ask(t, s, "/nested") }},
	}
	// Let both servers see the harness's readiness probe close.
	time.Sleep(200 * time.Millisecond)
	var sn, se state
	defer sn.close()
	defer se.close()
	for _, s := range steps {
		a := s.run(ngx, &sn)
		b := s.run(edge, &se)
		if d := diff(a, b, ngx.Port, edge.Port); len(d) > 0 {
			t.Errorf("%s differs:\n  %s", s.name, strings.Join(d, "\n  "))
		}
		if a.Status == 200 && !stubStatusRe.Match(b.Body) && len(b.Body) > 0 {
			t.Errorf("%s: edgeproxy page %q", s.name, b.Body)
		}
	}
	if len(se.bodies) == 0 {
		t.Fatal("no status pages")
	}
	t.Logf("first page: %q", se.bodies[0])
}

// state is one client's connections in TestStubStatusDifferential.
type state struct {
	c             net.Conn
	br            *bufio.Reader
	idle, partial net.Conn
	bodies        []string
}

func dial(t *testing.T, s *server) net.Conn {
	c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Let the server see the connection (and the bytes written next)
	// before the next status request.
	time.Sleep(250 * time.Millisecond)
	return c
}

func (st *state) ask(t *testing.T, s *server, path string) reply {
	return st.askRaw(t, s, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", false)
}

func (st *state) askRaw(t *testing.T, s *server, raw string, head bool) reply {
	if st.c == nil {
		c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st.c, st.br = c, bufio.NewReader(c)
	}
	time.Sleep(250 * time.Millisecond)
	_ = st.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(st.c, raw); err != nil {
		t.Fatal(err)
	}
	r := readReply(st.c, st.br, head)
	if r.Err != nil {
		t.Fatalf("%s: %v", s.Name, r.Err)
	}
	if r.Closed {
		st.c.Close()
		st.c = nil
	}
	st.bodies = append(st.bodies, string(r.Body))
	return r
}

func (st *state) close() {
	for _, c := range []net.Conn{st.c, st.idle, st.partial} {
		if c != nil {
			c.Close()
		}
	}
}

const metricsConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    proxy_cache_path {{.Tmp}}/cache keys_zone=mcache:1m;
    limit_req_zone $binary_remote_addr zone=perip:1m rate=1r/m;
    limit_conn_zone $binary_remote_addr zone=conns:1m;
    upstream app { server APP; server DEAD backup; }
    server {
        listen 127.0.0.1:{{.Port}};
        server_name metrics.test;
        root {{.Dir}};
        location /static/ { }
        location /limited/ { limit_req zone=perip burst=1 nodelay; limit_conn conns 5; }
        location /api/ { proxy_pass http://app; proxy_cache mcache; proxy_cache_valid 200 10m; }
        location = /metrics { metrics; access_log off; }
        location = /status { stub_status; }
    }
}
`

// The Prometheus endpoint after known traffic: every series the traffic
// touched has exactly the expected value.
func TestMetricsEndpoint(t *testing.T) {
	app := startCountingApp(t)
	docs := t.TempDir()
	for _, p := range []string{"static/a.txt", "limited/x.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(docs, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeFile(filepath.Join(docs, p), "data"); err != nil {
			t.Fatal(err)
		}
	}
	conf := strings.ReplaceAll(metricsConf, "DEAD", deadAddr(t))
	conf = strings.ReplaceAll(conf, "APP", app.addr)
	edge := start(t, "edgeproxy", conf, docs)

	codes := map[string]int{}
	send := func(path string) {
		r := roundTrip(t, edge.Addr, get(path), false)
		codes[path+" "+strconv.Itoa(r.Status)]++
	}
	for i := 0; i < 3; i++ {
		send("/static/a.txt") // 200
	}
	send("/static/missing") // 404
	send("/static/missing") // 404
	send("/api/one")        // MISS
	// ristretto admits a new entry asynchronously: give it a moment.
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 3; i++ {
		send("/api/one") // HIT
	}
	send("/api/two")       // MISS
	send("/limited/x.txt") // passed
	send("/limited/x.txt") // passed (burst 1)
	send("/limited/x.txt") // rejected: 503
	want := map[string]int{"/static/a.txt 200": 3, "/static/missing 404": 2, "/api/one 200": 4, "/api/two 200": 1,
		"/limited/x.txt 200": 2, "/limited/x.txt 503": 1}
	for k, n := range want {
		if codes[k] != n {
			t.Fatalf("traffic: %v, want %v", codes, want)
		}
	}
	if app.count("/api/one") != 1 {
		t.Fatalf("app saw /api/one %d times, want 1 (cache)", app.count("/api/one"))
	}

	r := roundTrip(t, edge.Addr, get("/metrics"), false)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	m := parseExposition(t, string(r.Body))
	srv := `server="metrics.test"`
	checks := map[string]float64{
		`edgeproxy_http_responses_total{location="/static/",` + srv + `,status="2xx"}`:           3,
		`edgeproxy_http_responses_total{location="/static/",` + srv + `,status="4xx"}`:           2,
		`edgeproxy_http_responses_total{location="/static/",` + srv + `,status="5xx"}`:           0,
		`edgeproxy_http_responses_total{location="/api/",` + srv + `,status="2xx"}`:              5,
		`edgeproxy_http_responses_total{location="/limited/",` + srv + `,status="2xx"}`:          2,
		`edgeproxy_http_responses_total{location="/limited/",` + srv + `,status="5xx"}`:          1,
		`edgeproxy_http_request_duration_seconds_count{location="/static/",` + srv + `}`:         5,
		`edgeproxy_http_request_duration_seconds_count{location="/api/",` + srv + `}`:            5,
		`edgeproxy_http_request_duration_seconds_bucket{location="/api/",` + srv + `,le="+Inf"}`: 5,
		// Only the two misses went upstream.
		`edgeproxy_upstream_response_duration_seconds_count{peer="` + app.addr + `",upstream="app"}`: 2,
		`edgeproxy_upstream_peer_up{backup="false",peer="` + app.addr + `",upstream="app"}`:          1,
		`edgeproxy_upstream_peer_active_requests{peer="` + app.addr + `",upstream="app"}`:            0,
		`edgeproxy_cache_lookups_total{result="hit",zone="mcache"}`:                                  3,
		`edgeproxy_cache_lookups_total{result="miss",zone="mcache"}`:                                 2,
		`edgeproxy_cache_responses_total{status="HIT",zone="mcache"}`:                                3,
		`edgeproxy_cache_responses_total{status="MISS",zone="mcache"}`:                               2,
		`edgeproxy_cache_responses_total{status="STALE",zone="mcache"}`:                              0,
		`edgeproxy_limit_req_requests_total{result="passed",zone="perip"}`:                           2,
		`edgeproxy_limit_req_requests_total{result="rejected",zone="perip"}`:                         1,
		`edgeproxy_limit_req_requests_total{result="delayed",zone="perip"}`:                          0,
		`edgeproxy_limit_conn_requests_total{result="passed",zone="conns"}`:                          2,
		`edgeproxy_limit_conn_requests_total{result="rejected",zone="conns"}`:                        0,
		// 13 requests + the readiness probe's connection + this scrape.
		`edgeproxy_connections_accepted_total`:        15,
		`edgeproxy_connections_handled_total`:         15,
		`edgeproxy_http_requests_total`:               14,
		`edgeproxy_connections_writing`:               1,
		`edgeproxy_connections_reading`:               0,
		`edgeproxy_tls_handshakes_total{result="ok"}`: 0,
	}
	for k, v := range checks {
		got, ok := m[k]
		if !ok {
			t.Errorf("missing %s", k)
			continue
		}
		if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	// Cache entries and bytes are admitted asynchronously (ristretto):
	// they are there, whatever their exact count at this instant.
	if _, ok := m[`edgeproxy_cache_bytes{zone="mcache"}`]; !ok {
		t.Error("missing edgeproxy_cache_bytes")
	}
	if _, ok := m[`go_goroutines`]; !ok {
		t.Error("missing the Go runtime collector")
	}
	// A scrape is not counted in its own location's responses until it
	// ends: the second scrape sees the first.
	r = roundTrip(t, edge.Addr, get("/metrics"), false)
	m = parseExposition(t, string(r.Body))
	if v := m[`edgeproxy_http_responses_total{location="= /metrics",`+srv+`,status="2xx"}`]; v != 1 {
		t.Errorf("scrapes counted %v, want 1", v)
	}
	// POST is refused like stub_status does.
	if r := roundTrip(t, edge.Addr, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false); r.Status != 405 {
		t.Errorf("POST /metrics: %d", r.Status)
	}
}

// parseExposition reads the text format into "name{labels}" -> value,
// labels as the encoder sorts them.
func parseExposition(t *testing.T, body string) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q", line)
		}
		m[line[:i]] = v
	}
	if len(m) == 0 {
		t.Fatal("empty exposition")
	}
	return m
}

const metricsTLSConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{{.Port}};
        location = /metrics { metrics; }
        location = /status { stub_status; }
    }
    server {
        listen 127.0.0.1:{{.Port2}} ssl;
        ssl_certificate {{.Dir}}/ec.crt;
        ssl_certificate_key {{.Dir}}/ec.key;
        location / { return 200 "tls\n"; }
    }
}
`

// TLS handshakes are counted (ok and failed), and TLS connections are
// connections like the others for stub_status.
func TestMetricsTLSHandshakes(t *testing.T) {
	docs := t.TempDir()
	writeCert(t, docs, "ec", false, "example.com")
	edge := start(t, "edgeproxy", metricsTLSConf, docs)
	addr := tlsAddr(t, edge)
	for i := 0; i < 2; i++ {
		if r := tlsGet(t, addr, newTLSConfig("example.com"), get("/")); r.Err != nil || r.Status != 200 {
			t.Fatalf("TLS GET: %d %v", r.Status, r.Err)
		}
	}
	// Plain HTTP to the TLS port: a failed handshake.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, get("/"))
	_, _ = io.ReadAll(c)
	c.Close()
	time.Sleep(200 * time.Millisecond)

	m := parseExposition(t, string(roundTrip(t, edge.Addr, get("/metrics"), false).Body))
	for k, v := range map[string]float64{
		`edgeproxy_tls_handshakes_total{result="ok"}`:     2,
		`edgeproxy_tls_handshakes_total{result="failed"}`: 1,
		// probe + 2 TLS + the failed one + this scrape; as in nginx, a
		// failed handshake was handled.
		`edgeproxy_connections_accepted_total`: 5,
		`edgeproxy_connections_handled_total`:  5,
		`edgeproxy_connections_active`:         1,
		`edgeproxy_http_requests_total`:        3,
	} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

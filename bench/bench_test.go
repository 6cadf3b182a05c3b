package main

import (
	"io"
	"math"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

// testdata/wrk_return200.txt is a recorded run of
// `wrk -t1 -c50 -d2s --latency -s done.lua` against nginx (return 200).
func TestParseWrkRecorded(t *testing.T) {
	r, err := parseWrk(string(readTestdata(t, "wrk_return200.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if !r.hasSummary || !r.fromLua || !r.hasLatencyTables {
		t.Fatalf("summary=%v lua=%v tables=%v", r.hasSummary, r.fromLua, r.hasLatencyTables)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"requests", float64(r.requests), 112839},
		{"duration_us", float64(r.durationUs), 2003730},
		{"bytes", float64(r.bytes), 16812511},
		{"rps", r.rps, 112839 * 1e6 / 2003730.0},
		{"p50", r.p50Us, 666},
		{"p90", r.p90Us, 964},
		{"p99", r.p99Us, 4871},
		{"p999", r.p999Us, 8471},
		{"max", r.maxUs, 9548},
		{"mean", r.meanUs, 804.09},
		// from the --latency text table
		{"text p50", r.textP50Us, 666},
		{"text p75", r.p75Us, 758},
		{"text p99", r.textP99Us, 4870},
		{"transfer/sec", r.transferPerSec, 8 << 20},
		{"non2xx", float64(r.non2xx), 0},
		{"socket errors", float64(r.socketErrors()), 0},
		{"MB/s", r.mbps(), 16812511 / 2003730.0},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseWrkNon2xx(t *testing.T) {
	r, err := parseWrk(string(readTestdata(t, "wrk_non2xx.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 33973 || r.non2xx != 33973 || r.p50Us != 578 || r.p99Us != 960 {
		t.Errorf("got requests=%d non2xx=%d p50=%v p99=%v", r.requests, r.non2xx, r.p50Us, r.p99Us)
	}
}

// Without the done() script the text output alone must still parse.
func TestParseWrkTextOnly(t *testing.T) {
	var lines []string
	for _, l := range strings.Split(string(readTestdata(t, "wrk_return200.txt")), "\n") {
		if !strings.HasPrefix(l, "BENCH ") {
			lines = append(lines, l)
		}
	}
	lines = append(lines, "  Socket errors: connect 1, read 2, write 3, timeout 4")
	r, err := parseWrk(strings.Join(lines, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.fromLua || r.requests != 112839 || r.durationUs != 2000000 || r.p50Us != 666 || r.p99Us != 4870 || r.p90Us != 960 {
		t.Errorf("got %+v", r)
	}
	if r.errConnect != 1 || r.errRead != 2 || r.errWrite != 3 || r.errTimeout != 4 {
		t.Errorf("socket errors %d %d %d %d", r.errConnect, r.errRead, r.errWrite, r.errTimeout)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("want error for output without a summary")
	}
}

func TestParseWrkUnits(t *testing.T) {
	for in, want := range map[string]float64{"666.00us": 666, "0.96ms": 960, "2.00s": 2e6, "1.50m": 90e6, "1.00h": 3600e6} {
		if got, err := parseWrkDuration(in); err != nil || !near(got, want) {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]float64{"100.00B": 100, "1.50KB": 1536, "8.00MB": 8 << 20, "1.00GB": 1 << 30} {
		if got, err := parseWrkSize(in); err != nil || !near(got, want) {
			t.Errorf("parseWrkSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseWrkDuration("12parsecs"); err == nil {
		t.Error("want error")
	}
}

func TestParseProcStat(t *testing.T) {
	// Recorded /proc/PID/stat of an nginx worker.
	s, err := parseProcStat(readTestdata(t, "proc_stat_nginx.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if s.pid != 5288 || s.comm != "nginx" || s.state != 'S' || s.ppid != 5286 || s.utime != 1234 || s.stime != 567 {
		t.Errorf("got %+v", s)
	}
	// comm with spaces and parentheses.
	s, err = parseProcStat(readTestdata(t, "proc_stat_weird.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if s.pid != 12345 || s.comm != "we) ird (name" || s.ppid != 1 || s.utime != 7 || s.stime != 3 {
		t.Errorf("got %+v", s)
	}
	if _, err := parseProcStat([]byte("garbage")); err == nil {
		t.Error("want error")
	}
	// Live: our own process.
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	s, err = parseProcStat(b)
	if err != nil || s.pid != os.Getpid() || s.ppid != os.Getppid() {
		t.Errorf("self: %+v %v", s, err)
	}
}

func TestParseStatusKB(t *testing.T) {
	b := readTestdata(t, "proc_status_nginx.txt")
	if kb, ok := parseStatusKB(b, "VmRSS"); !ok || kb != 6780 {
		t.Errorf("VmRSS = %d, %v", kb, ok)
	}
	if kb, ok := parseStatusKB(b, "VmHWM"); !ok || kb != 6780 {
		t.Errorf("VmHWM = %d, %v", kb, ok)
	}
	if kb, ok := parseStatusKB(b, "VmPeak"); !ok || kb != 10256 {
		t.Errorf("VmPeak = %d, %v", kb, ok)
	}
	if _, ok := parseStatusKB([]byte("Name:\tzombie\nState:\tZ (zombie)\n"), "VmRSS"); ok {
		t.Error("zombie has no VmRSS")
	}
	u := readTreeUsage(os.Getpid())
	if u.procs < 1 || u.rssKB == 0 {
		t.Errorf("self tree usage %+v", u)
	}
}

func TestMedianAndRatios(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{math.NaN(), 5}); m != 5 {
		t.Errorf("median = %v", m)
	}
	if !math.IsNaN(median(nil)) || !math.IsNaN(ratio(1, 0)) {
		t.Error("want NaN")
	}
	s := scenarioResult{
		a: []runResult{{rps: 100}, {rps: 90}, {rps: 50, err: "x"}},
		b: []runResult{{rps: 100}, {rps: 100}, {rps: 100}},
	}
	got := s.roundRatios(mRPS)
	if len(got) != 2 || got[0] != 1 || got[1] != 0.9 {
		t.Errorf("roundRatios = %v", got)
	}
	if m := sideMedian(s.a, mRPS); m != 95 {
		t.Errorf("sideMedian = %v", m)
	}
}

func TestScenarioTemplates(t *testing.T) {
	d := templateData{Port: 18080, Tmp: "/tmp/x", DocRoot: "/tmp/x/docroot", BackendPort: 19090}
	for _, sc := range scenarios {
		conf, err := renderConf(sc.conf, d)
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		c := string(conf)
		wants := []string{"worker_processes 1;", "worker_connections 20000;", "access_log off;", "listen 127.0.0.1:18080;"}
		if sc.conf == "log.conf" {
			// the one scenario that measures the access log itself
			wants[2] = "access_log /tmp/x/access.log combined;"
		}
		if sc.tls != "" {
			wants[3] = "listen 127.0.0.1:18080 ssl;"
			wants = append(wants, "ssl_certificate /tmp/x/cert.pem;", "ssl_protocols TLSv1.2 TLSv1.3;")
			if sc.newConn && sc.name != "tlsresume" && !strings.Contains(c, "ssl_session_tickets off;") {
				t.Errorf("%s: full handshakes need resumption off (wrk resumes)", sc.name)
			}
		}
		for _, want := range wants {
			if !strings.Contains(c, want) {
				t.Errorf("%s: missing %q", sc.name, want)
			}
		}
		if sc.kind == loadIdle && !strings.Contains(c, "worker_rlimit_nofile 30000;") {
			t.Errorf("%s: idle scenario needs worker_rlimit_nofile", sc.name)
		}
		if sc.backend && !strings.Contains(c, "server 127.0.0.1:19090;") {
			t.Errorf("%s: backend port not rendered", sc.name)
		}
		if sc.offConf != "" {
			off, err := renderConf(sc.offConf, d)
			if err != nil || !strings.Contains(string(off), "access_log off;") {
				t.Errorf("%s: off config %v:\n%s", sc.name, err, off)
			}
		}
		if strings.Contains(c, "{{") || strings.Contains(c, "<no value>") {
			t.Errorf("%s: unrendered template", sc.name)
		}
	}
	if _, err := selectScenarios("return200,nope"); err == nil {
		t.Error("want error for unknown scenario")
	}
}

func TestBackendBodies(t *testing.T) {
	h := backendHandler()
	for path, n := range map[string]int{"/100b": 100, "/10k": 10240, "/": 100} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 || len(b) != n || rec.Header().Get("Content-Length") == "" {
			t.Errorf("%s: code %d len %d", path, rec.Code, len(b))
		}
	}
}

package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendStubStatus(t *testing.T) {
	got := string(AppendStubStatus(nil, ConnCounts{Accepted: 7, Handled: 6, Requests: 21, Active: 3, Reading: 1, Writing: 1, Waiting: 1}))
	// ngx_http_stub_status_handler's format, trailing spaces included.
	want := "Active connections: 3 \nserver accepts handled requests\n 7 6 21 \nReading: 1 Writing: 1 Waiting: 1 \n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	for i, d := range []time.Duration{0, 5 * time.Millisecond, 6 * time.Millisecond, 300 * time.Millisecond, 11 * time.Second} {
		h.Observe(i%Shards, d)
	}
	cnt, sum, b := h.Read()
	if cnt != 5 {
		t.Fatalf("count %d", cnt)
	}
	if want := (11*time.Second + 311*time.Millisecond).Seconds(); sum < want-1e-9 || sum > want+1e-9 {
		t.Fatalf("sum %v want %v", sum, want)
	}
	// Bounds are inclusive upper bounds (le): 5 ms falls in le=0.005.
	want := map[float64]uint64{.005: 2, .01: 3, .025: 3, .05: 3, .1: 3, .25: 3, .5: 4, 1: 4, 2.5: 4, 5: 4, 10: 4}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("le=%v: %d, want %d", k, b[k], v)
		}
	}
}

func TestConnStates(t *testing.T) {
	before := ReadConns()
	// A connection: open, read a request, serve it, go idle, close.
	ConnOpened(3)
	Transition(3, Waiting, Reading)
	RequestStarted(3)
	mid := ReadConns()
	Transition(3, Reading, Writing)
	Transition(3, Writing, Waiting)
	ConnRefused(5)
	ConnOpened(5)
	idle := ReadConns()
	Transition(3, Waiting, Gone)
	Transition(5, Waiting, Gone)
	after := ReadConns()
	if d := mid.Reading - before.Reading; d != 1 {
		t.Errorf("reading +%d", d)
	}
	if d := idle.Waiting - before.Waiting; d != 2 {
		t.Errorf("waiting +%d", d)
	}
	if after.Accepted-before.Accepted != 3 || after.Handled-before.Handled != 2 || after.Requests-before.Requests != 1 {
		t.Errorf("accepted/handled/requests: %+v -> %+v", before, after)
	}
	if after.Active != before.Active || after.Reading != before.Reading || after.Writing != before.Writing {
		t.Errorf("gauges did not return: %+v -> %+v", before, after)
	}
}

// Counters are exact under concurrent use from many goroutines (run with
// -race).
func TestLocationConcurrent(t *testing.T) {
	l := &Location{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				l.Observe(g%Shards, 200+100*(i%4), time.Millisecond)
			}
		}(g)
	}
	wg.Wait()
	n := l.Classes()
	if n[1] != 2000 || n[2] != 2000 || n[3] != 2000 || n[4] != 2000 || n[0] != 0 || n[5] != 0 {
		t.Fatalf("classes %v", n)
	}
	if c, _, _ := l.Latency.Read(); c != 8000 {
		t.Fatalf("count %d", c)
	}
}

// The counting path costs no allocation (and takes no lock: it is only
// atomic adds, see the code).
func TestCountingZeroAllocs(t *testing.T) {
	l := Default.Location("alloc.test", "/")
	var h Histogram
	n := testing.AllocsPerRun(1000, func() {
		ConnOpened(1)
		Transition(1, Waiting, Reading)
		RequestStarted(1)
		Transition(1, Reading, Writing)
		l.Observe(1, 200, 3*time.Millisecond)
		h.Observe(ShardOfTime(time.Now()), time.Millisecond)
		Transition(1, Writing, Gone)
		TLSHandshake(true)
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

type fakeProvider struct{ h *Histogram }

func (p fakeProvider) CollectZones(z *Zones) {
	z.Caches = append(z.Caches, CacheZone{Name: "c", Hits: 4, Misses: 2, Entries: 1, Bytes: 100, MaxCap: 1000})
	z.Req = append(z.Req, ReqZone{Name: "r", Passed: 5, Rejected: 2, Delayed: 1})
	z.Conn = append(z.Conn, ConnZone{Name: "k", Passed: 3, Rejected: 1})
	z.Peers = append(z.Peers, Peer{Upstream: "app", Addr: "127.0.0.1:1", Up: true, Active: 2, Latency: p.h})
}

func TestExposition(t *testing.T) {
	r := &Registry{}
	l := r.Location("s", "/x/")
	l.Observe(0, 404, 20*time.Millisecond)
	l.Observe(1, 200, time.Millisecond)
	h := &Histogram{}
	h.Observe(0, 30*time.Millisecond)
	r.SetProvider(fakeProvider{h})
	out, err := NewExposition(r).Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`edgeproxy_http_responses_total{location="/x/",server="s",status="2xx"} 1`,
		`edgeproxy_http_responses_total{location="/x/",server="s",status="4xx"} 1`,
		`edgeproxy_http_request_duration_seconds_bucket{location="/x/",server="s",le="0.005"} 1`,
		`edgeproxy_http_request_duration_seconds_bucket{location="/x/",server="s",le="0.025"} 2`,
		`edgeproxy_http_request_duration_seconds_count{location="/x/",server="s"} 2`,
		`edgeproxy_upstream_response_duration_seconds_count{peer="127.0.0.1:1",upstream="app"} 1`,
		`edgeproxy_upstream_peer_up{backup="false",peer="127.0.0.1:1",upstream="app"} 1`,
		`edgeproxy_upstream_peer_active_requests{peer="127.0.0.1:1",upstream="app"} 2`,
		`edgeproxy_cache_lookups_total{result="hit",zone="c"} 4`,
		`edgeproxy_cache_lookups_total{result="miss",zone="c"} 2`,
		`edgeproxy_cache_entries{zone="c"} 1`,
		`edgeproxy_cache_bytes{zone="c"} 100`,
		`edgeproxy_limit_req_requests_total{result="rejected",zone="r"} 2`,
		`edgeproxy_limit_req_requests_total{result="delayed",zone="r"} 1`,
		`edgeproxy_limit_conn_requests_total{result="rejected",zone="k"} 1`,
		`# TYPE edgeproxy_http_request_duration_seconds histogram`,
		`go_goroutines `,
	} {
		if !strings.Contains(s, want+"\n") && !strings.Contains(s, want) {
			t.Errorf("missing %q", want)
		}
	}
}

func BenchmarkLocationObserve(b *testing.B) {
	l := &Location{}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Observe(i&(Shards-1), 200, time.Millisecond)
			i++
		}
	})
}

// A scrape with 100 locations (the Go and process collectors included):
// this runs on the event loop that receives the scrape.
func BenchmarkRender(b *testing.B) {
	r := &Registry{}
	for i := 0; i < 100; i++ {
		r.Location("s", "/loc/"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))).Observe(0, 200, time.Millisecond)
	}
	r.SetProvider(fakeProvider{&Histogram{}})
	e := NewExposition(r)
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = e.Render(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

func BenchmarkRenderSmall(b *testing.B) {
	r := &Registry{}
	for i := 0; i < 10; i++ {
		r.Location("s", "/loc/"+string(rune('a'+i))).Observe(0, 200, time.Millisecond)
	}
	e := NewExposition(r)
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = e.Render(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

package pipeline

import (
	"strings"
	"testing"
	"time"

	"edgeproxy/metrics"
)

func statusConf(t testing.TB) string {
	return `events {} http { server { listen 127.0.0.1:8080; server_name status.test; root ` + t.TempDir() + `;
		location = /ok { return 200 "ok"; }
		location = /st { stub_status; }
		location = /m { metrics; }
	} }`
}

// Every answered request is counted on the location that answered it, and
// the connection moves through stub_status's states.
func TestFeedCountsMetrics(t *testing.T) {
	c, ft := newTestConn(t, statusConf(t))
	ok := c.snap.Servers[0].Locs[0]
	before := ok.Stats.Classes()
	c.Feed([]byte("GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n"))
	after := ok.Stats.Classes()
	if after[1]-before[1] != 2 {
		t.Fatalf("2xx +%d, want +2", after[1]-before[1])
	}
	root := c.snap.Servers[0].Root.Stats
	if root == nil || root.Server != "status.test" || root.Location != "" {
		t.Fatalf("root stats %+v", root)
	}
	if n := root.Classes(); n[3] == 0 {
		t.Fatalf("the 404 of /nope was not counted on the server level: %v", n)
	}

	ft.out.Reset()
	c.Feed([]byte("GET /st HTTP/1.1\r\nHost: a\r\n\r\n"))
	out := ft.out.String()
	if !strings.Contains(out, "Content-Type: text/plain\r\n") || !strings.Contains(out, "\r\n\r\nActive connections: ") ||
		!strings.Contains(out, "Reading: ") {
		t.Fatalf("stub_status:\n%s", out)
	}
	ft.out.Reset()
	in := []byte("GET /m HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	n := c.Feed(in)
	// The scrape renders on a goroutine; the pipelined request waits.
	if ft.out.Len() != 0 {
		t.Fatalf("answered before the scrape finished:\n%s", ft.out.String())
	}
	waitCall(t, c)
	c.Feed(in[n:]) // the transport's wake-up offers the unconsumed input again
	out = ft.out.String()
	if !strings.HasSuffix(out, "\r\n\r\nok") || strings.Count(out, "HTTP/1.1 200 OK") != 2 {
		t.Fatalf("pipelined request after the scrape:\n%.300s ... %s", out, out[max(0, len(out)-200):])
	}
	if !strings.Contains(out, "Content-Type: "+string(metrics.ContentType)+"\r\n") ||
		!strings.Contains(out, `edgeproxy_http_responses_total{location="= /ok",server="status.test",status="2xx"}`) {
		t.Fatalf("metrics:\n%.2000s", out)
	}
	cn := metrics.ReadConns()
	c.Closed()
	if after := metrics.ReadConns(); after.Active != cn.Active-1 {
		t.Fatalf("active %d -> %d after close", cn.Active, after.Active)
	}
}

// Counting adds no allocation to a request: the same zero-alloc check as
// TestFeedZeroAllocs, on a location whose counters are live.
func TestFeedCountingZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	c, ft := newTestConn(t, statusConf(t))
	req := []byte("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	c.Feed(req)
	st := c.snap.Servers[0].Locs[0].Stats
	before := st.Classes()[1]
	if n := testing.AllocsPerRun(200, func() { ft.out.Reset(); c.Feed(req) }); n != 0 {
		t.Fatalf("%v allocations per counted request", n)
	}
	if got := st.Classes()[1] - before; got < 200 {
		t.Fatalf("counted %d requests", got)
	}
}

// waitCall waits for a worker (upstream call or scrape) to finish.
func waitCall(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.callReady() {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection closed while its scrape renders releases everything once.
func TestScrapeAbandoned(t *testing.T) {
	c, _ := newTestConn(t, statusConf(t))
	c.Feed([]byte("GET /m HTTP/1.1\r\nHost: a\r\n\r\n"))
	c.Closed()
	time.Sleep(50 * time.Millisecond)
	c2, ft := newTestConn(t, statusConf(t))
	c2.Feed([]byte("HEAD /m HTTP/1.1\r\nHost: a\r\n\r\n"))
	waitCall(t, c2)
	c2.Feed(nil)
	if out := ft.out.String(); !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(out, "\r\n\r\n") {
		t.Fatalf("HEAD /m:\n%s", out)
	}
}

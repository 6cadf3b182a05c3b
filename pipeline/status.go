package pipeline

import (
	"sync"

	"edgeproxy/http1"
	"edgeproxy/metrics"
	"edgeproxy/proxy"
	"edgeproxy/snapshot"
)

var textPlain = []byte("text/plain")

// serveStatusPage is the content handler of `stub_status`
// (ngx_http_stub_status_handler: GET and HEAD only, text/plain, the body
// discarded) and of `metrics` (the Prometheus text exposition).
func (c *Conn) serveStatusPage(p snapshot.StatusPage) {
	x := &c.w.x
	if m := c.w.req.MethodID(); m != http1.MethodGET && m != http1.MethodHEAD {
		c.finalize(405)
		return
	}
	if p == snapshot.StubStatus {
		x.scratch = metrics.AppendStubStatus(x.scratch[:0], metrics.ReadConns())
		c.writeSimple(200, x.scratch, textPlain, false)
		return
	}
	c.startScrape()
}

// scrapeCall is a metrics scrape in flight. Gathering every series takes
// about a millisecond per few hundred series (client_golang builds and
// sorts them), too long to stall an event loop, so it runs on a goroutine
// like an upstream call: the connection waits in phaseUpstream, the
// goroutine renders into body and wakes it, and finishScrape writes the
// response on the loop.
type scrapeCall struct {
	body []byte
	err  error
}

var scrapePool = sync.Pool{New: func() any { return new(scrapeCall) }}

func (c *Conn) startScrape() {
	r := &c.w.req
	// The borrowed input is gone when the response is written: keep the
	// head, as startProxy does.
	c.w.headCopy = append(c.w.headCopy[:0], r.HeadBytes()...)
	r.Rebase(c.w.headCopy)
	call := &c.call
	sc := scrapePool.Get().(*scrapeCall)
	// The pipeline's call bookkeeping (abandonCall, the worker handshake)
	// expects a Job: an empty one stands in.
	job := proxy.AcquireJob()
	call.job, call.loc, call.err, call.scrape, call.cancel = job, c.w.x.loc, nil, sc, nil
	call.state.Store(callRunning)
	c.proxying = true
	c.phase = phaseUpstream
	c.deadline.Store(0)
	t := c.t
	go func() {
		sc.body, sc.err = renderMetrics(sc.body[:0])
		if call.state.CompareAndSwap(callRunning, callDone) {
			t.WakeAfter(0)
			return
		}
		// The client went away (Closed): nobody else releases them.
		proxy.ReleaseJob(job)
		scrapePool.Put(sc)
	}()
}

// finishScrape writes the rendered exposition (on the loop).
func (c *Conn) finishScrape() {
	call := &c.call
	sc := call.scrape
	call.scrape = nil
	c.proxying = false
	proxy.ReleaseJob(call.job)
	call.job = nil
	x := &c.w.x
	x.loc = call.loc
	if sc.err != nil {
		c.finalize(500)
	} else {
		// The exposition format's Content-Type carries its own charset.
		c.writeSimple(200, sc.body, metrics.ContentType, true)
	}
	if len(sc.body) > 1<<20 {
		sc.body = nil
	}
	// writeSimple copied or wrote the body (Transport.Write copies what it
	// cannot send at once), so the buffer can be reused.
	scrapePool.Put(sc)
}

var (
	expoMu sync.Mutex
	expo   *metrics.Exposition
)

// renderMetrics gathers every metric into dst (one scrape at a time).
func renderMetrics(dst []byte) ([]byte, error) {
	expoMu.Lock()
	defer expoMu.Unlock()
	if expo == nil {
		expo = metrics.NewExposition(metrics.Default)
	}
	return expo.Render(dst)
}

package metrics

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("edgeproxy_"+name, help, labels, nil)
}

var (
	dAccepted = desc("connections_accepted_total", "Client connections accepted (stub_status accepts).")
	dHandled  = desc("connections_handled_total", "Client connections handled (stub_status handled).")
	dActive   = desc("connections_active", "Open client connections, including waiting ones (stub_status Active connections).")
	dReading  = desc("connections_reading", "Connections reading a request head.")
	dWriting  = desc("connections_writing", "Connections processing a request or writing its response.")
	dWaiting  = desc("connections_waiting", "Idle keep-alive connections.")
	dRequests = desc("http_requests_total", "Client requests (stub_status requests).")
	dTLS      = desc("tls_handshakes_total", "Server-side TLS handshakes.", "result")

	dResponses = desc("http_responses_total", "Responses by server, location and status class.", "server", "location", "status")
	dLatency   = desc("http_request_duration_seconds", "Request time ($request_time) by server and location.", "server", "location")

	dUpLatency = desc("upstream_response_duration_seconds", "Upstream attempt time ($upstream_response_time) by upstream and server.", "upstream", "peer")
	dUpUp      = desc("upstream_peer_up", "1 when the upstream server can be selected (not down, failed or failing health checks).", "upstream", "peer", "backup")
	dUpActive  = desc("upstream_peer_active_requests", "Requests in progress on the upstream server.", "upstream", "peer")
	dUpFails   = desc("upstream_peer_fails", "Failures of the upstream server within fail_timeout.", "upstream", "peer")

	dCacheLookups = desc("cache_lookups_total", "Cache lookups by result.", "zone", "result")
	dCacheResp    = desc("cache_responses_total", "Responses through the cache zone by $upstream_cache_status.", "zone", "status")
	dCacheEntries = desc("cache_entries", "Entries in the cache zone.", "zone")
	dCacheBytes   = desc("cache_bytes", "Bytes of the entries in the cache zone.", "zone")
	dCacheMax     = desc("cache_max_bytes", "The zone's max_size.", "zone")

	dLimitReq  = desc("limit_req_requests_total", "limit_req decisions by zone.", "zone", "result")
	dLimitConn = desc("limit_conn_requests_total", "limit_conn decisions by zone.", "zone", "result")
)

var classNames = [6]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// Collector is the prometheus.Collector of a Registry: it reads the
// counters at scrape time.
type Collector struct{ r *Registry }

// NewCollector returns r's collector.
func NewCollector(r *Registry) *Collector { return &Collector{r} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dAccepted, dHandled, dActive, dReading, dWriting, dWaiting, dRequests, dTLS,
		dResponses, dLatency, dUpLatency, dUpUp, dUpActive, dUpFails, dCacheLookups, dCacheResp, dCacheEntries, dCacheBytes, dCacheMax,
		dLimitReq, dLimitConn} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	cn := ReadConns()
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter(dAccepted, float64(cn.Accepted))
	counter(dHandled, float64(cn.Handled))
	counter(dRequests, float64(cn.Requests))
	gauge(dActive, float64(cn.Active))
	gauge(dReading, float64(cn.Reading))
	gauge(dWriting, float64(cn.Writing))
	gauge(dWaiting, float64(cn.Waiting))
	ok, failed := TLSCounts()
	counter(dTLS, float64(ok), "ok")
	counter(dTLS, float64(failed), "failed")

	for _, l := range c.r.Locations() {
		n := l.Classes()
		for i, v := range n {
			if v != 0 || i < 5 {
				counter(dResponses, float64(v), l.Server, l.Location, classNames[i])
			}
		}
		cnt, sum, b := l.Latency.Read()
		ch <- prometheus.MustNewConstHistogram(dLatency, cnt, sum, b, l.Server, l.Location)
	}

	z := c.r.zones()
	for _, p := range z.Peers {
		if p.Latency != nil {
			cnt, sum, b := p.Latency.Read()
			ch <- prometheus.MustNewConstHistogram(dUpLatency, cnt, sum, b, p.Upstream, p.Addr)
		}
		up := 0.0
		if p.Up {
			up = 1
		}
		gauge(dUpUp, up, p.Upstream, p.Addr, strconv.FormatBool(p.Backup))
		gauge(dUpActive, float64(p.Active), p.Upstream, p.Addr)
		gauge(dUpFails, float64(p.Fails), p.Upstream, p.Addr)
	}
	for _, cz := range z.Caches {
		counter(dCacheLookups, float64(cz.Hits), cz.Name, "hit")
		counter(dCacheLookups, float64(cz.Misses), cz.Name, "miss")
		counter(dCacheLookups, float64(cz.Expired), cz.Name, "expired")
		for st, n := range cz.Responses {
			counter(dCacheResp, float64(n), cz.Name, st)
		}
		gauge(dCacheEntries, float64(cz.Entries), cz.Name)
		gauge(dCacheBytes, float64(cz.Bytes), cz.Name)
		gauge(dCacheMax, float64(cz.MaxCap), cz.Name)
	}
	for _, rz := range z.Req {
		counter(dLimitReq, float64(rz.Passed), rz.Name, "passed")
		counter(dLimitReq, float64(rz.Delayed), rz.Name, "delayed")
		counter(dLimitReq, float64(rz.Rejected), rz.Name, "rejected")
		counter(dLimitReq, float64(rz.DelayedDryRun), rz.Name, "delayed_dry_run")
		counter(dLimitReq, float64(rz.RejectedDryRun), rz.Name, "rejected_dry_run")
	}
	for _, cz := range z.Conn {
		counter(dLimitConn, float64(cz.Passed), cz.Name, "passed")
		counter(dLimitConn, float64(cz.Rejected), cz.Name, "rejected")
	}
}

// Exposition is the Prometheus registry behind the metrics endpoint: the
// edgeproxy collector plus the Go runtime and process collectors.
type Exposition struct {
	reg *prometheus.Registry
	buf bytes.Buffer
}

// NewExposition builds the registry for r.
func NewExposition(r *Registry) *Exposition {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(r), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		extraCollector{})
	return &Exposition{reg: reg}
}

var (
	extraMu sync.Mutex
	extra   []prometheus.Collector
)

// RegisterExtra adds a collector of another package (e.g. fleet) to every
// exposition, present and future. Called at configuration time.
func RegisterExtra(c prometheus.Collector) {
	extraMu.Lock()
	extra = append(extra, c)
	extraMu.Unlock()
}

// extraCollector collects the RegisterExtra collectors at scrape time; it
// describes nothing (an unchecked collector), since they may come later.
type extraCollector struct{}

func (extraCollector) Describe(chan<- *prometheus.Desc) {}

func (extraCollector) Collect(ch chan<- prometheus.Metric) {
	extraMu.Lock()
	cs := append([]prometheus.Collector(nil), extra...)
	extraMu.Unlock()
	for _, c := range cs {
		c.Collect(ch)
	}
}

var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// ContentType is the Content-Type of Render's output (the Prometheus text
// format 0.0.4).
var ContentType = []byte(textFormat)

// Render gathers every metric and appends the text exposition to dst. It
// allocates (it runs once per scrape, not per request); not safe for
// concurrent use with itself — callers serialise (see Default exposition).
func (e *Exposition) Render(dst []byte) ([]byte, error) {
	mfs, err := e.reg.Gather()
	if err != nil {
		return dst, err
	}
	e.buf.Reset()
	enc := expfmt.NewEncoder(&e.buf, textFormat)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return dst, err
		}
	}
	return append(dst, e.buf.Bytes()...), nil
}

// AppendStubStatus appends nginx's stub_status page
// (ngx_http_stub_status_handler): the trailing spaces are nginx's.
func AppendStubStatus(dst []byte, c ConnCounts) []byte {
	dst = append(dst, "Active connections: "...)
	dst = strconv.AppendInt(dst, c.Active, 10)
	dst = append(dst, " \nserver accepts handled requests\n "...)
	dst = strconv.AppendInt(dst, c.Accepted, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, c.Handled, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, c.Requests, 10)
	dst = append(dst, " \nReading: "...)
	dst = strconv.AppendInt(dst, c.Reading, 10)
	dst = append(dst, " Writing: "...)
	dst = strconv.AppendInt(dst, c.Writing, 10)
	dst = append(dst, " Waiting: "...)
	dst = strconv.AppendInt(dst, c.Waiting, 10)
	return append(dst, " \n"...)
}

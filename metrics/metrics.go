// Package metrics holds edgeproxy's runtime counters and exposes them to
// Prometheus and to nginx's stub_status page.
//
// The hot path (every request, every connection state change) only does
// atomic adds on counters that live in the runtime objects — per location
// here, per zone in limiter and cachestore, per peer in upstream — and are
// spread over Shards cache lines so that event loops on different cores do
// not fight over one line. Nothing takes a lock, allocates or looks a label
// up by name while serving: a prometheus.Collector (Collector) reads the
// counters at scrape time and builds the samples then. client_golang's
// CounterVec.WithLabelValues is deliberately not used on the hot path (it
// hashes the label values and takes a lock per call).
package metrics

import (
	"sync"
	"sync/atomic"
	"time"
)

// Shards is how many cache-line-sized copies each hot counter has; a
// connection always writes the same shard (ShardOf its id), scrapes sum them.
const Shards = 8

// ShardOf maps a connection (or any) id to a shard.
func ShardOf(id uint64) int { return int(id & (Shards - 1)) }

// ShardOfTime picks a shard from a clock reading, for goroutines that have
// no id of their own (upstream workers): the low bits of a nanosecond clock
// spread them well enough.
func ShardOfTime(t time.Time) int { return int(uint64(t.UnixNano()>>6) & (Shards - 1)) }

// State is where a client connection is, as stub_status counts them.
type State uint8

const (
	// Waiting: idle keep-alive, or accepted with no request byte yet.
	Waiting State = iota
	// Reading: reading a request head (nginx's ngx_stat_reading).
	Reading
	// Writing: the request is being processed or its response written
	// (ngx_stat_writing), including a request delayed by limit_req.
	Writing
	// Gone: closed (only used as the final transition).
	Gone
)

// connShard is one shard of the connection counters. A connection always
// updates the same shard, and only the sum over shards is meaningful (a
// shard's gauges are deltas). Waiting is derived (active - reading -
// writing), so a request costs four atomic adds for its three state
// changes rather than six.
type connShard struct {
	accepted, handled, active, reading, writing, requests atomic.Int64
	_                                                     [16]byte
}

var conns [Shards]connShard

var tlsOK, tlsFailed atomic.Uint64

// ConnOpened counts an accepted connection that the server handles (nginx's
// accepts and handled, and an active connection in the Waiting state).
func ConnOpened(shard int) {
	s := &conns[shard]
	s.accepted.Add(1)
	s.handled.Add(1)
	s.active.Add(1)
}

// ConnRefused counts a connection accepted and closed at once past
// worker_connections: "accepts" grows, "handled" does not, as in nginx.
func ConnRefused(shard int) { conns[shard].accepted.Add(1) }

// Transition moves a connection from one state to another; to == Gone ends
// it (it is no longer active).
func Transition(shard int, from, to State) {
	if from == to {
		return
	}
	s := &conns[shard]
	switch from {
	case Reading:
		s.reading.Add(-1)
	case Writing:
		s.writing.Add(-1)
	}
	switch to {
	case Reading:
		s.reading.Add(1)
	case Writing:
		s.writing.Add(1)
	case Gone:
		s.active.Add(-1)
	}
}

// RequestStarted counts a request (nginx's "requests": every request whose
// first byte arrived, answered or not).
func RequestStarted(shard int) { conns[shard].requests.Add(1) }

// TLSHandshake counts a finished server-side TLS handshake.
func TLSHandshake(ok bool) {
	if ok {
		tlsOK.Add(1)
	} else {
		tlsFailed.Add(1)
	}
}

// ConnCounts is a reading of the connection counters, stub_status's numbers.
type ConnCounts struct {
	Accepted, Handled, Requests       int64
	Active, Reading, Writing, Waiting int64
}

// ReadConns sums the shards. The reading is not atomic across counters
// (nor is nginx's), so a derived Waiting is clamped at zero.
func ReadConns() ConnCounts {
	var c ConnCounts
	for i := range conns {
		s := &conns[i]
		c.Accepted += s.accepted.Load()
		c.Handled += s.handled.Load()
		c.Requests += s.requests.Load()
		c.Active += s.active.Load()
		c.Reading += s.reading.Load()
		c.Writing += s.writing.Load()
	}
	c.Waiting = max(c.Active-c.Reading-c.Writing, 0)
	return c
}

// TLSCounts returns the successful and failed TLS handshakes.
func TLSCounts() (ok, failed uint64) { return tlsOK.Load(), tlsFailed.Load() }

// Bounds are the upper bounds (seconds) of the latency histograms: the
// Prometheus client's default buckets, which suit HTTP latencies.
var Bounds = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

var boundsNs = func() (b [len(Bounds)]int64) {
	for i, s := range Bounds {
		b[i] = int64(s * 1e9)
	}
	return
}()

type histShard struct {
	counts [len(Bounds) + 1]atomic.Uint64 // non-cumulative; the last is +Inf
	sum    atomic.Int64                   // nanoseconds
	_      [24]byte
}

// Histogram is a lock-free latency histogram with Bounds buckets. The zero
// value is ready to use.
type Histogram struct {
	shards [Shards]histShard
}

// Observe records d on a shard: two atomic adds, no allocation.
func (h *Histogram) Observe(shard int, d time.Duration) {
	s := &h.shards[shard]
	ns := int64(d)
	i := 0
	for i < len(boundsNs) && ns > boundsNs[i] {
		i++
	}
	s.counts[i].Add(1)
	s.sum.Add(ns)
}

// Read returns the observation count, the sum in seconds and the cumulative
// bucket counts (upper bound -> count), as prometheus.NewConstHistogram
// takes them.
func (h *Histogram) Read() (count uint64, sum float64, buckets map[float64]uint64) {
	var per [len(Bounds) + 1]uint64
	var ns int64
	for i := range h.shards {
		s := &h.shards[i]
		for j := range per {
			per[j] += s.counts[j].Load()
		}
		ns += s.sum.Load()
	}
	buckets = make(map[float64]uint64, len(Bounds))
	for j, b := range Bounds {
		count += per[j]
		buckets[b] = count
	}
	count += per[len(Bounds)]
	return count, float64(ns) / 1e9, buckets
}

type statusShard struct {
	n [6]atomic.Uint64 // 1xx..5xx, then anything else
	_ [16]byte
}

// Location holds the counters of one location (or of a server's requests
// that matched no location): responses by status class and the request
// latency ($request_time). It outlives reloads: the Registry hands the same
// object to every snapshot that has the same server and location.
type Location struct {
	Server, Location string
	status           [Shards]statusShard
	Latency          Histogram
}

// Observe counts a finished request: three atomic adds.
func (l *Location) Observe(shard int, status int, d time.Duration) {
	c := status/100 - 1
	if c < 0 || c > 4 {
		c = 5
	}
	l.status[shard].n[c].Add(1)
	l.Latency.Observe(shard, d)
}

// Classes returns the response counts by class: 1xx..5xx, other.
func (l *Location) Classes() (n [6]uint64) {
	for i := range l.status {
		for j := range n {
			n[j] += l.status[i].n[j].Load()
		}
	}
	return n
}

// Registry keeps the per-location counters across reloads and knows where
// to read the zones' and upstreams' counters (the Provider).
type Registry struct {
	mu       sync.Mutex
	locs     map[[2]string]*Location
	order    []*Location
	provider Provider
}

// Default is the process-wide registry the snapshot compiler and the
// metrics endpoint use.
var Default = &Registry{}

// Location returns the counters of (server, location), creating them once.
// Called at configuration time, never while serving.
func (r *Registry) Location(server, location string) *Location {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locs == nil {
		r.locs = map[[2]string]*Location{}
	}
	k := [2]string{server, location}
	if l, ok := r.locs[k]; ok {
		return l
	}
	l := &Location{Server: server, Location: location}
	r.locs[k] = l
	r.order = append(r.order, l)
	return l
}

// Locations returns every location's counters, in creation order.
func (r *Registry) Locations() []*Location {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Location(nil), r.order...)
}

// SetProvider installs the source of the zone and upstream counters.
func (r *Registry) SetProvider(p Provider) {
	r.mu.Lock()
	r.provider = p
	r.mu.Unlock()
}

func (r *Registry) zones() Zones {
	r.mu.Lock()
	p := r.provider
	r.mu.Unlock()
	var z Zones
	if p != nil {
		p.CollectZones(&z)
	}
	return z
}

// Provider fills Zones with the counters of the runtime objects that the
// snapshot package owns (limit and cache zones, upstream groups), so this
// package needs not import them.
type Provider interface {
	CollectZones(z *Zones)
}

// Zones is one reading of the zone and upstream counters.
type Zones struct {
	Caches []CacheZone
	Req    []ReqZone
	Conn   []ConnZone
	Peers  []Peer
}

// CacheZone is a proxy_cache_path keys_zone's counters (cache lookups).
type CacheZone struct {
	Name                   string
	Hits, Misses, Expired  uint64
	Entries, Bytes, MaxCap int64
	// Responses counts responses by $upstream_cache_status (HIT, MISS, ...).
	Responses map[string]uint64
}

// ReqZone is a limit_req_zone's decisions.
type ReqZone struct {
	Name                                                     string
	Passed, Delayed, Rejected, DelayedDryRun, RejectedDryRun uint64
}

// ConnZone is a limit_conn_zone's decisions.
type ConnZone struct {
	Name             string
	Passed, Rejected uint64
}

// Peer is one upstream server's state.
type Peer struct {
	Upstream, Addr string
	Backup         bool
	Up             bool // selectable: not down, not failed (max_fails), not failing health checks
	Active         int  // requests in progress (least_conn's count)
	Fails          int  // failures within fail_timeout
	Latency        *Histogram
}

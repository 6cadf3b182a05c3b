// Package upstream implements nginx-compatible upstream groups for
// edgeproxy: the `upstream {}` block with its `server` parameters (weight,
// max_fails, fail_timeout, backup, down, max_conns), the balancers of nginx
// OSS (round robin, least_conn, ip_hash, hash, hash consistent, random,
// random two), passive health accounting, proxy_next_upstream retries with
// the $upstream_* variables, and active health checks (an addition to nginx
// OSS). Every upstream server is reached through its own
// fasthttp.HostClient.
//
// The selection code mirrors nginx 1.22 line by line so that, given the same
// server list, the same client address or hash key maps to the same server as
// in nginx, and the weighted round-robin sequence is identical. Each balancer
// cites the nginx function it mirrors.
package upstream

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"edgeproxy/metrics"

	"github.com/valyala/fasthttp"
)

// Balance selects the load-balancing method of a group.
// The zero value is RoundRobin, nginx's default.
type Balance uint8

const (
	// RoundRobin is nginx's default smooth weighted round robin
	// (ngx_http_upstream_round_robin.c).
	RoundRobin Balance = iota
	// LeastConn is the `least_conn` directive
	// (ngx_http_upstream_least_conn_module.c).
	LeastConn
	// IPHash is the `ip_hash` directive
	// (ngx_http_upstream_ip_hash_module.c).
	IPHash
	// Hash is `hash KEY` or, with GroupSpec.HashConsistent, `hash KEY
	// consistent` (ngx_http_upstream_hash_module.c).
	Hash
	// Random is `random` (ngx_http_upstream_random_module.c).
	Random
	// RandomTwo is `random two` / `random two least_conn`: two random
	// servers, the one with fewer active connections per weight wins.
	RandomTwo
)

func (b Balance) String() string {
	switch b {
	case RoundRobin:
		return "round_robin"
	case LeastConn:
		return "least_conn"
	case IPHash:
		return "ip_hash"
	case Hash:
		return "hash"
	case Random:
		return "random"
	case RandomTwo:
		return "random_two"
	}
	return fmt.Sprintf("Balance(%d)", uint8(b))
}

// nginx defaults of the `server` directive parameters
// (ngx_http_upstream_server in ngx_http_upstream.c).
const (
	DefaultWeight      = 1
	DefaultMaxFails    = 1
	DefaultFailTimeout = 10 * time.Second
	// DefaultBufferSize is proxy_buffer_size's default: one memory page on
	// Linux/amd64. The whole upstream response header must fit into it.
	DefaultBufferSize = 4096
	// DefaultKeepaliveTimeout and DefaultKeepaliveRequests are the defaults
	// of the upstream keepalive_timeout / keepalive_requests directives
	// (ngx_http_upstream_keepalive_module.c, nginx >= 1.19.10).
	DefaultKeepaliveTimeout  = 60 * time.Second
	DefaultKeepaliveRequests = 1000
)

// ServerSpec is one `server` line of an upstream block.
//
// Field values are the nginx parameter values, with two exceptions for the
// zero value: Weight 0 means 1 (nginx rejects weight=0) and FailTimeout 0
// means 10s. MaxFails is taken literally: 0 disables passive failure
// accounting exactly like nginx's max_fails=0, so a config parser must put
// DefaultMaxFails (1) there when the parameter is absent; ServerDefaults does
// that.
type ServerSpec struct {
	// Addr is "host:port" (an IP literal or a name resolved once by
	// NewGroup's dialer at connect time) or "unix:/path/to.sock". It is
	// also the text reported in $upstream_addr and the key of the
	// consistent-hash ring, as in nginx where the ring is built from the
	// server directive's text.
	Addr        string
	Weight      int
	MaxFails    int
	FailTimeout time.Duration
	Backup      bool
	Down        bool
	// MaxConns limits concurrent requests to the server (nginx max_conns);
	// 0 means unlimited.
	MaxConns int
}

// ServerDefaults returns a ServerSpec with nginx's defaults for a `server`
// line that has no parameters.
func ServerDefaults(addr string) ServerSpec {
	return ServerSpec{Addr: addr, Weight: DefaultWeight, MaxFails: DefaultMaxFails, FailTimeout: DefaultFailTimeout}
}

// GroupSpec describes an `upstream` block plus the proxy_* timeouts that
// apply to its connections. The zero value of each optional field means
// nginx's default, noted per field.
type GroupSpec struct {
	// Name is the upstream name; nginx reports it in $upstream_addr when no
	// live server is left ("no live upstreams").
	Name    string
	Servers []ServerSpec
	Balance Balance
	// HashConsistent selects ketama consistent hashing for Balance == Hash.
	HashConsistent bool

	// Keepalive is the upstream `keepalive N` directive. 0 (nginx's default:
	// no keepalive directive) closes the upstream connection after every
	// response, which Do enforces by sending "Connection: close". A positive
	// value keeps connections open; fasthttp has no idle-connection cap, so
	// N itself is not enforced beyond MaxConns.
	Keepalive int
	// KeepaliveTimeout is the idle time after which a pooled connection is
	// closed; 0 means 60s.
	KeepaliveTimeout time.Duration
	// KeepaliveRequests is the number of requests after which a pooled
	// connection is retired; 0 means 1000.
	KeepaliveRequests int

	// ConnectTimeout is proxy_connect_timeout; 0 means 60s.
	ConnectTimeout time.Duration
	// SendTimeout bounds writing the whole request (nginx's
	// proxy_send_timeout bounds each write); 0 means 60s.
	SendTimeout time.Duration
	// ReadTimeout bounds reading the whole response including the body
	// (nginx's proxy_read_timeout bounds the gap between two reads; fasthttp
	// only offers a total). 0 means 60s.
	ReadTimeout time.Duration
	// BufferSize is proxy_buffer_size: the read buffer of an upstream
	// connection, which also caps the response header size (larger → 502
	// "upstream sent too big header"). 0 means DefaultBufferSize.
	BufferSize int
	// MaxConnWaitTimeout is how long a request waits for a free fasthttp
	// connection when MaxConns connections are busy; 0 means do not wait.
	// Pick already skips servers at max_conns, so waiting only happens in
	// the rare window where a finished request's connection is not yet back
	// in the pool.
	MaxConnWaitTimeout time.Duration
	// StreamResponseBody makes Do return as soon as the response header is
	// read, leaving the body in resp.BodyStream(). Active-connection
	// accounting for least_conn and max_conns then ends when Do returns,
	// not when the body has been relayed.
	StreamResponseBody bool

	// HealthCheck enables active health checks when non-nil.
	HealthCheck *HealthSpec
}

// Peer is one upstream server of a Group. It is created by NewGroup and
// lives as long as the Group (the zero value is not usable); all methods are
// safe for concurrent use from any goroutine.
type Peer struct {
	g      *Group
	addr   string
	backup bool
	index  int // index within its tier, the bit in Tried
	server int // index of its Addr among distinct Addrs (consistent hash)
	client *fasthttp.HostClient

	weight      int
	maxFails    int
	maxConns    int
	failTimeout int64 // ns
	down        bool  // `down` parameter

	// The fields below are guarded by g.mu; they are the mutable fields of
	// ngx_http_upstream_rr_peer_t.
	currentWeight   int
	effectiveWeight int
	conns           int
	fails           int
	accessed        int64 // ns since clockBase, last failure
	checked         int64 // ns since clockBase
	hcDown          bool  // taken out by active health checks
	hcOK, hcBad     int   // consecutive active-check successes / failures

	lat *metrics.Histogram // attempt durations, lock-free (not under g.mu)
}

// Latency is the histogram of the peer's attempt durations
// ($upstream_response_time), for metrics.
func (p *Peer) Latency() *metrics.Histogram { return p.lat }

// Addr returns the server address as configured, e.g. "127.0.0.1:8001" or
// "unix:/run/app.sock"; it is the text of $upstream_addr.
func (p *Peer) Addr() string { return p.addr }

// Backup reports whether the peer is a backup server.
func (p *Peer) Backup() bool { return p.backup }

// Client returns the fasthttp client bound to this server. Requests sent
// through it bypass retries and accounting; pair them with Group.Done.
func (p *Peer) Client() *fasthttp.HostClient { return p.client }

// PeerState is a snapshot of a peer's balancing and health state, for
// status pages and tests.
type PeerState struct {
	Addr            string
	Backup          bool
	Conns           int
	Fails           int
	EffectiveWeight int
	// Unavailable is true while max_fails failures within fail_timeout keep
	// the peer out of selection.
	Unavailable bool
	// HealthDown is true while active health checks keep the peer out.
	HealthDown bool
	// Down is the server's `down` parameter.
	Down bool
}

// Group is an upstream block built once per configuration by NewGroup (the
// zero value is not usable). It is safe for concurrent use by any number of
// goroutines: balancer state is guarded by one mutex, like nginx's
// ngx_http_upstream_rr_peers_wlock with a shared zone. A Group with active health
// checks runs one background goroutine until Stop is called.
type Group struct {
	name    string
	balance Balance
	spec    GroupSpec

	mu      sync.Mutex
	primary []Peer
	backup  []Peer

	single      bool // nginx peers->single: one primary and no backup
	totalWeight int  // sum of primary weights (ip_hash, hash walk)
	tries       int  // ngx_http_upstream_tries(): non-down primary + backup
	points      []chashPoint
	ranges      []int // cumulative primary weights (random)

	hc *healthChecker
}

// clockBase anchors the monotonic nanosecond clock used for fail_timeout
// arithmetic; nginx uses ngx_time() seconds, we keep the same comparisons
// with finer resolution.
var clockBase = time.Now()

func nanotime() int64 { return int64(time.Since(clockBase)) }

// NewGroup validates spec and builds the group, its per-server
// fasthttp.HostClients and, if spec.HealthCheck is set, starts the active
// health checker. Call Stop when the configuration is replaced.
func NewGroup(spec GroupSpec) (*Group, error) {
	if len(spec.Servers) == 0 {
		return nil, fmt.Errorf("upstream %q: no servers", spec.Name)
	}
	if spec.Balance > RandomTwo {
		return nil, fmt.Errorf("upstream %q: unknown balance method %d", spec.Name, spec.Balance)
	}
	g := &Group{name: spec.Name, balance: spec.Balance, spec: spec}
	if g.name == "" {
		g.name = "upstream"
	}
	serverIDs := make(map[string]int)
	var np, nb int
	for _, s := range spec.Servers {
		if s.Backup {
			nb++
		} else {
			np++
		}
	}
	if np == 0 {
		// ngx_http_upstream_init_round_robin: "no servers in upstream".
		return nil, fmt.Errorf("upstream %q: no servers (only backup servers)", spec.Name)
	}
	if nb > 0 && spec.Balance != RoundRobin && spec.Balance != LeastConn {
		// ip_hash, hash and random do not set NGX_HTTP_UPSTREAM_BACKUP in
		// uscf->flags, so nginx refuses the "backup" parameter with them.
		return nil, fmt.Errorf("upstream %q: backup servers are not supported with %v", spec.Name, spec.Balance)
	}
	g.primary = make([]Peer, 0, np)
	g.backup = make([]Peer, 0, nb)
	for i, s := range spec.Servers {
		if s.Addr == "" {
			return nil, fmt.Errorf("upstream %q: server %d has no address", spec.Name, i)
		}
		if s.Weight < 0 || s.MaxFails < 0 || s.MaxConns < 0 || s.FailTimeout < 0 {
			return nil, fmt.Errorf("upstream %q: server %s: negative parameter", spec.Name, s.Addr)
		}
		w := s.Weight
		if w == 0 {
			w = DefaultWeight
		}
		ft := s.FailTimeout
		if ft == 0 {
			ft = DefaultFailTimeout
		}
		id, ok := serverIDs[s.Addr]
		if !ok {
			id = len(serverIDs)
			serverIDs[s.Addr] = id
		}
		p := Peer{
			g: g, addr: s.Addr, backup: s.Backup, server: id,
			weight: w, effectiveWeight: w, maxFails: s.MaxFails,
			maxConns: s.MaxConns, failTimeout: int64(ft), down: s.Down,
			lat: new(metrics.Histogram),
		}
		client, err := newHostClient(&spec, s)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", spec.Name, err)
		}
		p.client = client
		if s.Backup {
			p.index = len(g.backup)
			g.backup = append(g.backup, p)
		} else {
			p.index = len(g.primary)
			g.primary = append(g.primary, p)
			g.totalWeight += w
			g.ranges = append(g.ranges, g.totalWeight)
		}
		if !s.Down {
			g.tries++
		}
	}
	// Peers hold a back pointer; fix it after the slices stopped growing.
	for i := range g.primary {
		g.primary[i].g = g
	}
	for i := range g.backup {
		g.backup[i].g = g
	}
	g.single = len(g.primary) == 1 && len(g.backup) == 0
	if spec.Balance == Hash && spec.HashConsistent {
		g.points = buildChashPoints(g.primary)
	}
	if spec.HealthCheck != nil {
		hc, err := newHealthChecker(g, *spec.HealthCheck)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", spec.Name, err)
		}
		g.hc = hc
		hc.start()
	}
	return g, nil
}

// Name returns the upstream name.
func (g *Group) Name() string { return g.name }

// Peers returns the primary peers followed by the backup peers, in
// configuration order. The slice is freshly allocated.
func (g *Group) Peers() []*Peer {
	out := make([]*Peer, 0, len(g.primary)+len(g.backup))
	for i := range g.primary {
		out = append(out, &g.primary[i])
	}
	for i := range g.backup {
		out = append(out, &g.backup[i])
	}
	return out
}

// State returns a snapshot of every peer (primaries, then backups).
func (g *Group) State() []PeerState {
	now := nanotime()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]PeerState, 0, len(g.primary)+len(g.backup))
	for _, tier := range [][]Peer{g.primary, g.backup} {
		for i := range tier {
			p := &tier[i]
			out = append(out, PeerState{
				Addr: p.addr, Backup: p.backup, Conns: p.conns, Fails: p.fails,
				EffectiveWeight: p.effectiveWeight, Unavailable: p.failedLocked(now),
				HealthDown: p.hcDown, Down: p.down,
			})
		}
	}
	return out
}

// Stop stops the active health checker, if any, and closes idle upstream
// connections. The group stays usable for requests still in flight; call
// Stop once, when a configuration reload retires the group.
func (g *Group) Stop() {
	if g.hc != nil {
		g.hc.stop()
	}
	for _, p := range g.Peers() {
		p.client.CloseIdleConnections()
	}
}

// failedLocked is nginx's "max_fails within fail_timeout" exclusion test,
// identical in ngx_http_upstream_get_peer, get_least_conn_peer,
// get_ip_hash_peer and get_hash_peer. g.mu must be held.
func (p *Peer) failedLocked(now int64) bool {
	return p.maxFails != 0 && p.fails >= p.maxFails && now-p.checked <= p.failTimeout
}

// usableLocked applies every exclusion of ngx_http_upstream_get_peer except
// the tried bitmap: down, failed, max_conns, plus our active health state.
func (p *Peer) usableLocked(now int64) bool {
	if p.down || p.hcDown || p.failedLocked(now) {
		return false
	}
	return p.maxConns == 0 || p.conns < p.maxConns
}

func newHostClient(gs *GroupSpec, s ServerSpec) (*fasthttp.HostClient, error) {
	network, address := "tcp", s.Addr
	if strings.HasPrefix(s.Addr, "unix:") {
		network, address = "unix", s.Addr[len("unix:"):]
		if address == "" {
			return nil, errors.New("empty unix socket path")
		}
	} else if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		return nil, fmt.Errorf("server %q: %w", s.Addr, err)
	}
	ct := orDefault(gs.ConnectTimeout, 60*time.Second)
	maxReq := gs.KeepaliveRequests
	if maxReq == 0 {
		maxReq = DefaultKeepaliveRequests
	}
	d := &dialer{network: network, address: address, timeout: ct, maxRequests: maxReq}
	bufSize := gs.BufferSize
	if bufSize <= 0 {
		bufSize = DefaultBufferSize
	}
	maxConns := s.MaxConns
	if maxConns == 0 {
		// nginx has no per-server connection cap without max_conns; lift
		// fasthttp's default of 512.
		maxConns = 1 << 20
	}
	return &fasthttp.HostClient{
		Addr: s.Addr,
		Dial: d.dial,
		// We decide retries with proxy_next_upstream semantics; fasthttp
		// would otherwise retry idempotent requests 5 times on its own.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		MaxConns:                  maxConns,
		MaxConnWaitTimeout:        gs.MaxConnWaitTimeout,
		MaxIdleConnDuration:       orDefault(gs.KeepaliveTimeout, DefaultKeepaliveTimeout),
		ReadBufferSize:            bufSize,
		ReadTimeout:               orDefault(gs.ReadTimeout, 60*time.Second),
		WriteTimeout:              orDefault(gs.SendTimeout, 60*time.Second),
		// LIFO reuses the most recently used connection, which is the one
		// least likely to have been closed by the backend's idle timer
		// (Gunicorn's keepalive is 2s).
		ConnPoolStrategy:              fasthttp.LIFO,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		StreamResponseBody:            gs.StreamResponseBody,
	}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

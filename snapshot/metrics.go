package snapshot

import (
	"sort"

	"edgeproxy/cachestore"
	"edgeproxy/config"
	"edgeproxy/metrics"
)

// StatusPage is the content handler a `stub_status` or `metrics` directive
// installs in a location.
type StatusPage uint8

const (
	// NoStatusPage: the location serves as configured otherwise.
	NoStatusPage StatusPage = iota
	// StubStatus is nginx's stub_status page.
	StubStatus
	// PrometheusMetrics is edgeproxy's `metrics;` (Prometheus text format).
	PrometheusMetrics
)

// statusPage compiles `stub_status` and `metrics`. Like any content handler
// (ngx_http_core_loc_conf_t.handler) it belongs to the level that names it
// and is not inherited by nested locations.
func (c *compiler) statusPage(d *config.Directive, loc *Location) error {
	if d.Name == "metrics" {
		loc.StatusPage = PrometheusMetrics
		return nil
	}
	// nginx 1.22 accepts the old "stub_status on" form and ignores the
	// argument whatever it is (ngx_http_set_stub_status), "off" included.
	loc.StatusPage = StubStatus
	return nil
}

// locationLabel names a location in metrics: its modifier and pattern as
// written ("= /health", "~ \.php$", "@fallback", "/api/"); the server
// level (no location matched) is "".
func locationLabel(l *Location) string {
	switch l.Modifier {
	case "":
		return l.Pattern
	case "@":
		return "@" + l.Pattern
	}
	return l.Modifier + " " + l.Pattern
}

// bindStats attaches the per-location counters of a compiled server. The
// server is named by its first server_name, or by its first listen address
// when it has none; counters are shared by identical (server, location)
// pairs and survive reloads.
func bindStats(srv *Server, firstListen string) {
	name := srv.Name
	if name == "" {
		name = firstListen
	}
	srv.Root.Stats = metrics.Default.Location(name, "")
	for _, l := range srv.Locs {
		l.Stats = metrics.Default.Location(name, locationLabel(l))
	}
}

func init() { metrics.Default.SetProvider(shared) }

// CollectZones implements metrics.Provider: the zones and groups in the
// registry are the ones every snapshot since the start has used (a reload
// keeps identical ones), read without blocking the serving paths (cache and
// limiter counters are atomics; upstream state takes the group's balancer
// mutex briefly, like a balancing decision).
func (r *registry) CollectZones(z *metrics.Zones) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range sortedKeys(r.caches) {
		cz := r.caches[k]
		s := cz.Stats()
		resp := map[string]uint64{}
		for i, n := range cz.ResponseCounts() {
			resp[cachestore.ResponseStatuses[i]] = n
		}
		z.Caches = append(z.Caches, metrics.CacheZone{Name: cz.Name(), Hits: s.Hits, Misses: s.Misses, Expired: s.Expired,
			Entries: s.Entries, Bytes: s.Bytes, MaxCap: s.MaxBytes, Responses: resp})
	}
	for _, k := range sortedKeys(r.req) {
		rz := r.req[k]
		s := rz.Stats()
		z.Req = append(z.Req, metrics.ReqZone{Name: rz.Name(), Passed: s.Passed, Delayed: s.Delayed, Rejected: s.Rejected,
			DelayedDryRun: s.DelayedDryRun, RejectedDryRun: s.RejectedDryRun})
	}
	for _, k := range sortedKeys(r.conn) {
		cz := r.conn[k]
		s := cz.Stats()
		z.Conn = append(z.Conn, metrics.ConnZone{Name: cz.Name(), Passed: s.Passed, Rejected: s.Rejected})
	}
	for _, k := range sortedKeys(r.groups) {
		g := r.groups[k]
		peers := g.Peers()
		for i, st := range g.State() {
			z.Peers = append(z.Peers, metrics.Peer{Upstream: g.Name(), Addr: st.Addr, Backup: st.Backup,
				Up: !st.Unavailable && !st.HealthDown && !st.Down, Active: st.Conns, Fails: st.Fails,
				Latency: peers[i].Latency()})
		}
	}
	// Two zones of one name (declared differently across reloads) would
	// give duplicate series, which Prometheus refuses: one of them is shown.
	z.Caches = dedup(z.Caches, func(c metrics.CacheZone) string { return c.Name })
	z.Req = dedup(z.Req, func(c metrics.ReqZone) string { return c.Name })
	z.Conn = dedup(z.Conn, func(c metrics.ConnZone) string { return c.Name })
	z.Peers = dedup(z.Peers, func(p metrics.Peer) string { return p.Upstream + "\x00" + p.Addr })
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func dedup[T any](in []T, key func(T) string) []T {
	seen := map[string]int{}
	out := in[:0]
	for _, v := range in {
		if i, ok := seen[key(v)]; ok {
			out[i] = v
			continue
		}
		seen[key(v)] = len(out)
		out = append(out, v)
	}
	return out
}

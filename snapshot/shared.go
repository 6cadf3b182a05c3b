package snapshot

import (
	"fmt"
	"sync"
	"time"

	"edgeproxy/accesslog"
	"edgeproxy/cachestore"
	"edgeproxy/fleet"
	"edgeproxy/limiter"
	"edgeproxy/proxy"
	"edgeproxy/static"
	"edgeproxy/upstream"
)

// shared holds the state that outlives a configuration reload: a zone,
// cache or upstream group that a new snapshot declares identically (same
// name and parameters) is the same object as before, so a reload neither
// empties the cache nor resets rate limits or upstream health. Compile and
// reload run on the main goroutine; the mutex only guards against tests
// compiling in parallel.
var shared = &registry{}

type registry struct {
	mu     sync.Mutex
	f      *static.Cache
	l      *accesslog.Registry
	req    map[string]*limiter.ReqZone
	conn   map[string]*limiter.ConnZone
	caches map[string]*cachestore.Zone
	groups map[string]*upstream.Group
	fleets map[*limiter.ReqZone]*fleet.Limiter
	tkeys  map[string]*fleet.TicketKeys
	purges map[*cachestore.Zone]*fleet.Purger
	cfleet map[*limiter.ConnZone]*fleet.ConnLimiter
}

// connFleet returns the Redis sync of limit_conn zone z, started on first
// use and kept across reloads.
func (r *registry) connFleet(z *limiter.ConnZone, addr string, interval time.Duration) *fleet.ConnLimiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfleet == nil {
		r.cfleet = map[*limiter.ConnZone]*fleet.ConnLimiter{}
	}
	if f, ok := r.cfleet[z]; ok {
		if f.Addr() == addr {
			return f
		}
		f.Stop()
	}
	f := fleet.NewConnLimiter(z, addr, interval)
	z.SetObserver(f)
	r.cfleet[z] = f
	return f
}

// purger returns the fleet-wide purge of cache zone z through the Redis at
// addr, started on first use and kept across reloads.
func (r *registry) purger(z *cachestore.Zone, addr string) *fleet.Purger {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.purges == nil {
		r.purges = map[*cachestore.Zone]*fleet.Purger{}
	}
	if p, ok := r.purges[z]; ok {
		if p.Addr() == addr {
			return p
		}
		p.Stop()
	}
	p := fleet.NewPurger(addr, z.Name(), func(key []byte) {
		if n := len(key); n > 0 && key[n-1] == '*' {
			z.PurgePrefix(key[:n-1])
			return
		}
		z.Purge(key)
	})
	r.purges[z] = p
	return p
}

// tickets returns the fleet's shared TLS ticket keys at the Redis addr,
// started on first use and kept across reloads.
func (r *registry) tickets(addr string) *fleet.TicketKeys {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tkeys == nil {
		r.tkeys = map[string]*fleet.TicketKeys{}
	}
	tk, ok := r.tkeys[addr]
	if !ok {
		tk = fleet.NewTicketKeys(addr, 0)
		r.tkeys[addr] = tk
	}
	return tk
}

// fleet returns the Redis sync of zone (limit_req_zone ... redis=ADDR),
// starting it on first use; a zone keeps its sync across reloads. A new
// address replaces the old sync.
func (r *registry) fleet(z *limiter.ReqZone, addr string, interval time.Duration) *fleet.Limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fleets == nil {
		r.fleets = map[*limiter.ReqZone]*fleet.Limiter{}
	}
	if f, ok := r.fleets[z]; ok {
		if f.Addr() == addr {
			return f
		}
		f.Stop()
	}
	f := fleet.New(z, addr, interval)
	z.SetObserver(f)
	r.fleets[z] = f
	return f
}

func (r *registry) files() *static.Cache {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		r.f = &static.Cache{}
	}
	return r.f
}

func (r *registry) logs() *accesslog.Registry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.l == nil {
		r.l = accesslog.NewRegistry(0)
	}
	return r.l
}

func (r *registry) reqZone(name string, size, rate int64) *limiter.ReqZone {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.req == nil {
		r.req = map[string]*limiter.ReqZone{}
	}
	k := fmt.Sprint(name, "|", size, "|", rate)
	z, ok := r.req[k]
	if !ok {
		z = limiter.NewReqZone(name, size, rate)
		r.req[k] = z
	}
	return z
}

func (r *registry) connZone(name string, size int64) *limiter.ConnZone {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		r.conn = map[string]*limiter.ConnZone{}
	}
	k := fmt.Sprint(name, "|", size)
	z, ok := r.conn[k]
	if !ok {
		z = limiter.NewConnZone(name, size)
		r.conn[k] = z
	}
	return z
}

func (r *registry) cacheZone(spec cachestore.ZoneSpec) (*cachestore.Zone, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.caches == nil {
		r.caches = map[string]*cachestore.Zone{}
	}
	k := fmt.Sprintf("%s|%d|%d|%d", spec.Name, spec.KeysZoneSize, spec.MaxBytes, spec.Inactive)
	if z, ok := r.caches[k]; ok {
		return z, nil
	}
	z, err := cachestore.NewZone(spec)
	if err != nil {
		return nil, err
	}
	r.caches[k] = z
	return z, nil
}

func (r *registry) group(spec upstream.GroupSpec) (*upstream.Group, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groups == nil {
		r.groups = map[string]*upstream.Group{}
	}
	k := fmt.Sprintf("%#v", spec)
	if g, ok := r.groups[k]; ok {
		return g, nil
	}
	g, err := upstream.NewGroup(spec)
	if err != nil {
		return nil, err
	}
	r.groups[k] = g
	return g, nil
}

var _ = proxy.ParsePass

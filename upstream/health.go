package upstream

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// HealthSpec configures active health checks, an addition to nginx OSS
// modelled on NGINX Plus's health_check (interval, uri, passes, fails,
// match status). The zero value of each field means the default noted.
type HealthSpec struct {
	// Interval between two probes of a server; 0 means 5s.
	Interval time.Duration
	// URI is the probed request target; "" means "/".
	URI string
	// Host is the Host header of probes; "" means the server address.
	Host string
	// ExpectStatus lists healthy statuses: "200-399" (the default when
	// empty), "200", or a comma-separated mix such as "200,204,300-399".
	ExpectStatus string
	// Rise is the number of consecutive passing probes that bring a server
	// taken out back in; 0 means 1.
	Rise int
	// Fall is the number of consecutive failing probes that take a server
	// out; 0 means 1.
	Fall int
	// Timeout bounds one probe (connect, send, read); 0 means Interval.
	Timeout time.Duration
}

type statusRange struct{ lo, hi int }

func parseExpectStatus(s string) ([]statusRange, error) {
	if s == "" {
		s = "200-399"
	}
	var out []statusRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("health check: bad status %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, fmt.Errorf("health check: bad status range %q", part)
			}
		}
		if a < 100 || b > 999 {
			return nil, fmt.Errorf("health check: status out of range %q", part)
		}
		out = append(out, statusRange{a, b})
	}
	return out, nil
}

// healthChecker is the one goroutine per group that probes every server.
type healthChecker struct {
	g       *Group
	spec    HealthSpec
	expect  []statusRange
	clients []*fasthttp.HostClient // parallel to g.Peers()
	peers   []*Peer
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newHealthChecker(g *Group, spec HealthSpec) (*healthChecker, error) {
	expect, err := parseExpectStatus(spec.ExpectStatus)
	if err != nil {
		return nil, err
	}
	if spec.Interval <= 0 {
		spec.Interval = 5 * time.Second
	}
	if spec.URI == "" {
		spec.URI = "/"
	}
	if spec.Rise <= 0 {
		spec.Rise = 1
	}
	if spec.Fall <= 0 {
		spec.Fall = 1
	}
	if spec.Timeout <= 0 {
		spec.Timeout = spec.Interval
	}
	hc := &healthChecker{g: g, spec: spec, expect: expect, peers: g.Peers(),
		quit: make(chan struct{}), done: make(chan struct{})}
	for _, p := range hc.peers {
		// Probes use their own client so they neither take a max_conns
		// slot of the peer nor sit in its keepalive pool.
		gs := GroupSpec{ConnectTimeout: spec.Timeout, SendTimeout: spec.Timeout, ReadTimeout: spec.Timeout, KeepaliveRequests: 1}
		c, err := newHostClient(&gs, ServerSpec{Addr: p.addr, MaxConns: 1})
		if err != nil {
			return nil, err
		}
		hc.clients = append(hc.clients, c)
	}
	return hc, nil
}

func (hc *healthChecker) start() { go hc.run() }

func (hc *healthChecker) stop() {
	hc.once.Do(func() { close(hc.quit) })
	<-hc.done
}

func (hc *healthChecker) run() {
	defer close(hc.done)
	tick := time.NewTicker(hc.spec.Interval)
	defer tick.Stop()
	for {
		hc.round()
		select {
		case <-hc.quit:
			return
		case <-tick.C:
		}
	}
}

// round probes all servers concurrently and waits for them, so a round
// lasts at most Timeout and Stop returns promptly.
func (hc *healthChecker) round() {
	var wg sync.WaitGroup
	for i := range hc.peers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			hc.record(hc.peers[i], hc.probe(hc.clients[i], hc.peers[i]))
		}(i)
	}
	wg.Wait()
}

func (hc *healthChecker) probe(c *fasthttp.HostClient, p *Peer) bool {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(hc.spec.URI)
	host := hc.spec.Host
	if host == "" {
		host = p.addr
		if strings.HasPrefix(host, "unix:") {
			host = "localhost"
		}
	}
	req.Header.SetHost(host)
	req.Header.Set("User-Agent", "edgeproxy-health-check")
	req.SetConnectionClose()
	if err := c.DoTimeout(req, resp, hc.spec.Timeout); err != nil {
		return false
	}
	st := resp.StatusCode()
	for _, r := range hc.expect {
		if st >= r.lo && st <= r.hi {
			return true
		}
	}
	return false
}

// record applies Rise/Fall hysteresis to the probe outcome.
func (hc *healthChecker) record(p *Peer, ok bool) {
	g := hc.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		p.hcBad = 0
		p.hcOK++
		if p.hcDown && p.hcOK >= hc.spec.Rise {
			p.hcDown = false
		}
		return
	}
	p.hcOK = 0
	p.hcBad++
	if !p.hcDown && p.hcBad >= hc.spec.Fall {
		p.hcDown = true
	}
}

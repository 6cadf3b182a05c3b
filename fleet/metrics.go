package fleet

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"edgeproxy/metrics"
)

// The fleet's series on the metrics endpoint: whether each synced zone
// reaches Redis, how many exchanges failed, and how many requests of other
// nodes were charged to this node's buckets.
var (
	dUp       = prometheus.NewDesc("edgeproxy_fleet_redis_up", "1 when the zone's last exchange with Redis succeeded.", []string{"zone", "kind"}, nil)
	dFailures = prometheus.NewDesc("edgeproxy_fleet_sync_failures_total", "Exchanges with Redis that failed (the node limited locally meanwhile).", []string{"zone"}, nil)
	dCharged  = prometheus.NewDesc("edgeproxy_fleet_charged_requests_total", "Requests accepted by other nodes, charged to this node's limit_req buckets.", []string{"zone"}, nil)
)

var (
	regMu   sync.Mutex
	reqs    []*Limiter
	conns   []*ConnLimiter
	regOnce sync.Once
)

func register(l *Limiter, c *ConnLimiter) {
	regOnce.Do(func() { metrics.RegisterExtra(collector{}) })
	regMu.Lock()
	defer regMu.Unlock()
	if l != nil {
		reqs = append(reqs, l)
	}
	if c != nil {
		conns = append(conns, c)
	}
}

type collector struct{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dUp
	ch <- dFailures
	ch <- dCharged
}

func (collector) Collect(ch chan<- prometheus.Metric) {
	regMu.Lock()
	defer regMu.Unlock()
	up := func(down bool) float64 {
		if down {
			return 0
		}
		return 1
	}
	for _, l := range reqs {
		f, c, down := l.Stats()
		ch <- prometheus.MustNewConstMetric(dUp, prometheus.GaugeValue, up(down), l.zone.Name(), "limit_req")
		ch <- prometheus.MustNewConstMetric(dFailures, prometheus.CounterValue, float64(f), l.zone.Name())
		ch <- prometheus.MustNewConstMetric(dCharged, prometheus.CounterValue, float64(c), l.zone.Name())
	}
	for _, c := range conns {
		ch <- prometheus.MustNewConstMetric(dUp, prometheus.GaugeValue, up(c.down.Load()), c.zone.Name(), "limit_conn")
	}
}

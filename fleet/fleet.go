// Package fleet makes limit_req zones fleet-wide through Redis: every node
// keeps deciding with its own local bucket (the hot path never waits on the
// network and allocates nothing for a known key), and a background
// goroutine per zone exchanges counts of accepted requests with Redis every
// sync interval, charging each node's buckets with what the other nodes
// accepted (limiter.ReqZone.Charge).
//
// Accuracy: a node learns of the others' requests at most one interval (plus
// a Redis round trip) late, so in the worst case every node spends the whole
// burst in the same interval: the fleet may accept up to (burst+1) × nodes +
// rate × interval × nodes more than one nginx would before the buckets
// agree; after that the fleet-wide rate holds. Counts live in one Redis key
// per zone, key and second (INCRBY + PEXPIRE), so nothing accumulates.
//
// Redis down or slow: the exchange fails within its timeouts, the node logs
// once, counts the failure and keeps limiting locally; when Redis answers
// again it logs once more and fleet-wide limiting resumes by itself.
package fleet

import (
	"bytes"
	"context"
	"encoding/hex"
	"log"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"

	"edgeproxy/limiter"
)

// DefaultInterval is how often counts are exchanged when sync= is not given.
const DefaultInterval = 20 * time.Millisecond

// Limiter syncs one limiter.ReqZone with the other nodes through Redis.
// Create it with New; it runs until Stop. Accepted may be called by any
// goroutine.
type Limiter struct {
	zone     *limiter.ReqZone
	rdb      *redis.Client
	addr     string
	prefix   string
	interval time.Duration
	shards   [16]aggShard
	stop     chan struct{}
	done     chan struct{}

	down     atomic.Bool
	failures atomic.Int64 // exchanges that failed (Redis down or slow)
	charged  atomic.Int64 // requests of other nodes charged here
}

type aggShard struct {
	mu sync.Mutex
	m  map[uint64]*entry
}

// entry is one key seen locally: its accepts not yet sent, the window it
// last synced in and the global count seen then.
type entry struct {
	key    []byte
	local  int64
	window int64
	seen   int64
	idle   int // intervals without a local accept
}

// New starts syncing zone through the Redis at addr (host:port), every
// interval (DefaultInterval when 0).
func New(zone *limiter.ReqZone, addr string, interval time.Duration) *Limiter {
	if interval <= 0 {
		interval = DefaultInterval
	}
	l := &Limiter{
		zone: zone,
		addr: addr,
		rdb: redis.NewClient(&redis.Options{
			Addr: addr,
			// A slow Redis must not slow the exchange down much: the
			// node limits locally meanwhile.
			DialTimeout: 200 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond,
			PoolSize: 2, MaxRetries: -1, DisableIdentity: true,
		}),
		prefix:   "edgeproxy:limit_req:" + zone.Name() + ":",
		interval: interval,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range l.shards {
		l.shards[i].m = map[uint64]*entry{}
	}
	register(l, nil)
	go l.run()
	return l
}

// Addr is the Redis address.
func (l *Limiter) Addr() string { return l.addr }

// Accepted implements limiter.Observer: it counts one accepted request of
// key. Allocation-free once the key has been seen.
func (l *Limiter) Accepted(key []byte) {
	h := xxhash.Sum64(key)
	s := &l.shards[h&15]
	s.mu.Lock()
	e := s.m[h]
	if e == nil {
		e = &entry{key: append([]byte(nil), key...)}
		s.m[h] = e
	} else if !bytes.Equal(e.key, key) {
		// A 64-bit hash collision: this key stays local only.
		s.mu.Unlock()
		return
	}
	e.local++
	e.idle = 0
	s.mu.Unlock()
}

// Stats reports how many exchanges failed and how many requests of other
// nodes were charged here, and whether Redis is currently unreachable.
func (l *Limiter) Stats() (failures, charged int64, down bool) {
	return l.failures.Load(), l.charged.Load(), l.down.Load()
}

// Stop ends the sync goroutine and closes the Redis client.
func (l *Limiter) Stop() {
	close(l.stop)
	<-l.done
	l.rdb.Close()
}

type pending struct {
	e      *entry
	delta  int64
	window int64
	cmd    redis.Cmder
}

func (l *Limiter) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	var batch []pending
	keyBuf := make([]byte, 0, 128)
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		window := now.Unix()
		batch = batch[:0]
		// Keys with local accepts send them; keys active in the last
		// second only read, so a node that is rejecting still learns
		// what the others accept.
		idleMax := int(time.Second/l.interval) + 1
		for i := range l.shards {
			s := &l.shards[i]
			s.mu.Lock()
			for h, e := range s.m {
				if e.local == 0 {
					e.idle++
					if e.idle > idleMax {
						delete(s.m, h)
						continue
					}
				}
				batch = append(batch, pending{e: e, delta: e.local, window: window})
				e.local = 0
			}
			s.mu.Unlock()
		}
		if len(batch) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*l.interval+100*time.Millisecond)
		pipe := l.rdb.Pipeline()
		for i := range batch {
			keyBuf = append(keyBuf[:0], l.prefix...)
			keyBuf = hex.AppendEncode(keyBuf, batch[i].e.key)
			keyBuf = append(keyBuf, ':')
			keyBuf = strconv.AppendInt(keyBuf, window, 10)
			k := string(keyBuf)
			if batch[i].delta > 0 {
				batch[i].cmd = pipe.IncrBy(ctx, k, batch[i].delta)
				pipe.PExpire(ctx, k, 3*time.Second)
			} else {
				batch[i].cmd = pipe.Get(ctx, k)
			}
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil && err != redis.Nil {
			l.failures.Add(1)
			if !l.down.Swap(true) {
				log.Printf("[warn] fleet: redis at %s unavailable (%v): zone %q limits locally", l.addr, err, l.zone.Name())
			}
			continue
		}
		if l.down.Swap(false) {
			log.Printf("[notice] fleet: redis at %s is back: zone %q limits fleet-wide again", l.addr, l.zone.Name())
		}
		ms := limiter.NowMillis()
		for i := range batch {
			p := &batch[i]
			var g int64
			switch c := p.cmd.(type) {
			case *redis.IntCmd:
				g = c.Val()
			case *redis.StringCmd:
				g, _ = c.Int64()
			}
			e := p.e
			// Only this goroutine touches window and seen.
			if e.window != p.window {
				e.window, e.seen = p.window, 0
			}
			others := g - e.seen - p.delta
			e.seen = g
			if others > 0 {
				l.zone.Charge(e.key, ms, others)
				l.charged.Add(others)
			}
		}
	}
}

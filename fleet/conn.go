package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"edgeproxy/limiter"
)

// ConnLimiter makes a limit_conn_zone fleet-wide through Redis
// (`limit_conn_zone KEY zone=NAME:SIZE redis=HOST:PORT`). Each node keeps
// counting its own requests in progress; every interval it writes its
// counts of all active keys into its own Redis hash (expiring when the
// node stops refreshing it) and reads the other nodes' hashes, whose sums
// the zone adds to its own count when it decides
// (limiter.ConnZone.SetRemote).
// Accuracy: the other nodes' requests are seen one interval late, so for
// that long every node may admit up to the limit on its own.
type ConnLimiter struct {
	zone     *limiter.ConnZone
	rdb      *redis.Client
	addr     string
	prefix   string
	node     string
	interval time.Duration
	mu       sync.Mutex
	keys     map[uint64]*connEntry
	stop     chan struct{}
	done     chan struct{}
	down     atomic.Bool
}

type connEntry struct {
	key   []byte
	local int64 // requests in progress here
}

// NewConnLimiter starts syncing zone through the Redis at addr.
func NewConnLimiter(zone *limiter.ConnZone, addr string, interval time.Duration) *ConnLimiter {
	if interval <= 0 {
		interval = DefaultInterval
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	l := &ConnLimiter{
		zone: zone,
		addr: addr,
		rdb: redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond, PoolSize: 2, MaxRetries: -1, DisableIdentity: true}),
		prefix:   "edgeproxy:limit_conn:" + zone.Name() + ":",
		node:     hex.EncodeToString(id[:]),
		interval: interval,
		keys:     map[uint64]*connEntry{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	register(nil, l)
	go l.run()
	return l
}

// Addr is the Redis address.
func (l *ConnLimiter) Addr() string { return l.addr }

// Acquired implements limiter.ConnObserver. Allocation-free once the key
// has been seen.
func (l *ConnLimiter) Acquired(key []byte, h uint64) {
	l.mu.Lock()
	e := l.keys[h]
	if e == nil {
		e = &connEntry{key: append([]byte(nil), key...)}
		l.keys[h] = e
	}
	e.local++
	l.mu.Unlock()
}

// Released implements limiter.ConnObserver.
func (l *ConnLimiter) Released(h uint64) {
	l.mu.Lock()
	if e := l.keys[h]; e != nil && e.local > 0 {
		e.local--
	}
	l.mu.Unlock()
}

// Stop ends the sync goroutine.
func (l *ConnLimiter) Stop() {
	close(l.stop)
	<-l.done
	l.rdb.Close()
}

func (l *ConnLimiter) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	own := l.prefix + "node:" + l.node
	nodes := l.prefix + "nodes"
	fields := map[string]any{}
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		// This node's counts: one hash per node, rewritten whole every
		// interval and expiring if the node stops (a crash frees its
		// counts within 3 s).
		clear(fields)
		l.mu.Lock()
		for h, e := range l.keys {
			if e.local == 0 {
				delete(l.keys, h)
				continue
			}
			fields[hex.EncodeToString(e.key)] = e.local
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 4*l.interval+100*time.Millisecond)
		pipe := l.rdb.Pipeline()
		pipe.Del(ctx, own)
		if len(fields) > 0 {
			pipe.HSet(ctx, own, fields)
			pipe.PExpire(ctx, own, 3*time.Second)
		}
		pipe.SAdd(ctx, nodes, l.node)
		pipe.PExpire(ctx, nodes, time.Hour)
		members := pipe.SMembers(ctx, nodes)
		_, err := pipe.Exec(ctx)
		var remote map[uint64]int32
		if err == nil {
			// The other nodes' counts.
			pipe = l.rdb.Pipeline()
			var others []*redis.MapStringStringCmd
			var ids []string
			for _, id := range members.Val() {
				if id == l.node {
					continue
				}
				ids = append(ids, id)
				others = append(others, pipe.HGetAll(ctx, l.prefix+"node:"+id))
			}
			if len(others) > 0 {
				_, err = pipe.Exec(ctx)
			}
			if err == nil {
				remote = map[uint64]int32{}
				for i, c := range others {
					m := c.Val()
					if len(m) == 0 {
						// Gone (expired) or idle: forget the node.
						l.rdb.SRem(ctx, nodes, ids[i])
						continue
					}
					for hk, v := range m {
						key, err1 := hex.DecodeString(hk)
						n, err2 := strconv.ParseInt(v, 10, 32)
						if err1 == nil && err2 == nil && n > 0 {
							remote[l.zone.Hash(key)] += int32(n)
						}
					}
				}
			}
		}
		cancel()
		if err != nil && err != redis.Nil {
			if !l.down.Swap(true) {
				log.Printf("[warn] fleet: redis at %s unavailable (%v): zone %q limits connections locally", l.addr, err, l.zone.Name())
			}
			l.zone.SetRemote(nil)
			continue
		}
		if l.down.Swap(false) {
			log.Printf("[notice] fleet: redis at %s is back: zone %q limits connections fleet-wide again", l.addr, l.zone.Name())
		}
		l.zone.SetRemote(remote)
	}
}

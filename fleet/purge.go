package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Purger spreads cache purges over the fleet through Redis pub/sub
// (`proxy_cache_path ... keys_zone=NAME:SIZE redis=HOST:PORT`): a purge on
// one node is published on the zone's channel and every other node
// subscribed to it purges its own copy. Publish never blocks the caller;
// the subscription reconnects by itself when Redis comes back.
type Purger struct {
	rdb     *redis.Client
	addr    string
	channel string
	node    string // this process's id: its own messages are skipped
	purge   func(key []byte)
	out     chan []byte
	stop    chan struct{}
	wg      sync.WaitGroup
	ready   chan struct{}
}

// NewPurger starts the subscription of zone's channel at the Redis addr;
// purge is called (on the subscription goroutine) with each key another
// node purged, a trailing '*' meaning a prefix. It waits up to a second for
// the subscription to be in place.
func NewPurger(addr, zone string, purge func(key []byte)) *Purger {
	var id [8]byte
	_, _ = rand.Read(id[:])
	p := &Purger{
		rdb: redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, PoolSize: 2, DisableIdentity: true}),
		addr:    addr,
		channel: "edgeproxy:purge:" + zone,
		node:    hex.EncodeToString(id[:]),
		purge:   purge,
		out:     make(chan []byte, 1024),
		stop:    make(chan struct{}),
		ready:   make(chan struct{}),
	}
	p.wg.Add(2)
	go p.subscribe()
	go p.publish()
	select {
	case <-p.ready:
	case <-time.After(time.Second):
	}
	return p
}

// Addr is the Redis address.
func (p *Purger) Addr() string { return p.addr }

// Publish tells the other nodes to purge key (a trailing '*': a prefix).
// It copies key and never blocks: when Redis is down and the queue is
// full the purge stays local, with a log line.
func (p *Purger) Publish(key []byte) {
	select {
	case p.out <- append([]byte(nil), key...):
	default:
		log.Printf("[warn] fleet: purge queue full, %q purged on this node only", key)
	}
}

// Stop ends the subscription and the publisher.
func (p *Purger) Stop() {
	close(p.stop)
	p.wg.Wait()
	p.rdb.Close()
}

func (p *Purger) publish() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case key := <-p.out:
			msg := p.node + " " + string(key)
			for attempt := 0; ; attempt++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := p.rdb.Publish(ctx, p.channel, msg).Err()
				cancel()
				if err == nil {
					break
				}
				if attempt == 0 {
					log.Printf("[warn] fleet: redis at %s unavailable (%v): retrying purge of %q", p.addr, err, key)
				}
				select {
				case <-p.stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if attempt >= 50 {
					log.Printf("[warn] fleet: purge of %q not published", key)
					break
				}
			}
		}
	}
}

func (p *Purger) subscribe() {
	defer p.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-p.stop
		cancel()
	}()
	ps := p.rdb.Subscribe(ctx, p.channel)
	defer ps.Close()
	once := sync.Once{}
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// go-redis reconnects and resubscribes on the next Receive.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-p.stop:
				return
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			once.Do(func() { close(p.ready) })
		case *redis.Message:
			node, key, ok := cut(m.Payload)
			if ok && node != p.node {
				p.purge([]byte(key))
			}
		}
	}
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

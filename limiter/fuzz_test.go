package limiter

import (
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// model is a direct transcription of ngx_http_limit_req_lookup,
// ngx_http_limit_req_account and ngx_http_limit_req_expire over an unbounded
// map and an LRU slice (least recent first).
type model struct {
	rate  int64
	nodes map[string]*modelNode
	lru   []string
}

func (m *model) bump(key string) {
	for i, k := range m.lru {
		if k == key {
			m.lru = append(m.lru[:i], m.lru[i+1:]...)
			break
		}
	}
	m.lru = append(m.lru, key)
}

// expire is ngx_http_limit_req_expire(ctx, 1): the slab never fills here.
func (m *model) expire(now int64) {
	for n := 1; n < 3 && len(m.lru) > 0; n++ {
		lr := m.nodes[m.lru[0]]
		ms := now - lr.last
		if ms < 0 {
			ms = -ms
		}
		if ms < 60000 || lr.excess-m.rate*ms/1000 > 0 {
			return
		}
		delete(m.nodes, m.lru[0])
		m.lru = m.lru[1:]
	}
}

type modelNode struct{ excess, last int64 }

func (m *model) step(n *modelNode, now int64) (excess, ms int64) {
	ms = now - n.last
	if ms < -60000 {
		ms = 1
	} else if ms < 0 {
		ms = 0
	}
	excess = n.excess - m.rate*ms/1000 + 1000
	if excess < 0 {
		excess = 0
	}
	return excess, ms
}

// lookup returns ok=false for NGX_BUSY.
func (m *model) lookup(key string, now, burst int64, account bool) (bool, int64) {
	n := m.nodes[key]
	if n == nil {
		m.expire(now)
		m.lru = append(m.lru, key)
		if account {
			m.nodes[key] = &modelNode{last: now}
		} else {
			m.nodes[key] = &modelNode{last: 0}
		}
		return true, 0
	}
	m.bump(key)
	excess, ms := m.step(n, now)
	if excess > burst*1000 {
		return false, excess
	}
	if account {
		n.excess = excess
		if ms != 0 {
			n.last = now
		}
	}
	return true, excess
}

func (m *model) commit(key string, now int64) int64 {
	n := m.nodes[key]
	excess, ms := m.step(n, now)
	if ms != 0 {
		n.last = now
	}
	n.excess = excess
	return excess
}

// FuzzReqZone drives a zone and the model with the same requests (random
// keys, some colliding in the hash, random clock steps including backwards)
// and requires identical answers; a small second zone with churn checks the
// structure and the 1+burst bound under eviction.
func FuzzReqZone(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(3), uint8(5))
	f.Add([]byte{1, 0x90, 2, 0x81, 3, 0xff, 0x41, 0, 0x82, 0, 0xc3, 7}, uint8(0), uint8(1))
	f.Add([]byte("the quick brown fox jumps over the lazy dog"), uint8(10), uint8(200))
	f.Fuzz(fuzzReqZone)
}

func fuzzReqZone(t *testing.T, ops []byte, burst8, rate8 uint8) {
	burst, rate := int64(burst8%20), int64(rate8)*37+1
	z := newReqZone("fuzz", 1<<20, rate, 1)
	// Only 2 hash bits: most keys collide, so the full-key compare decides.
	z.hash = func(b []byte) uint64 { return xxhash.Sum64(b) & 3 }
	m := &model{rate: rate, nodes: map[string]*modelNode{}}

	small := newReqZone("small", 2*pageCost(reqHdr+1), rate, 1)
	small.hash = z.hash
	passesAt := map[string]int64{}
	var smallNow int64 = -1

	now := int64(1_000_000)
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i], ops[i+1]
		switch {
		case arg&0xc0 == 0xc0:
			now -= int64(arg&0x3f) * 1500 // backwards, sometimes past 60 s
		case arg&0x80 != 0:
			now += int64(arg&0x3f) * int64(arg&0x3f) * 3
		}
		key := fmt.Sprintf("k%d", op&15)
		if op&0x10 != 0 {
			key += "-a-much-longer-key-that-spans-several-words"
		}
		switch op >> 5 {
		case 0, 1, 2, 3: // the last (or only) limit_req
			r, e := z.Decide([]byte(key), now, burst, NoDelay)
			ok, me := m.lookup(key, now, burst, true)
			if (r == Passed) != ok || e != me || (r != Passed && r != Busy) {
				t.Fatalf("op %d %s at %d: zone %v/%d, nginx model ok=%v/%d", i, key, now, r, e, ok, me)
			}
		case 4, 5: // an earlier limit_req that all later ones accepted
			r, e, h := z.Lookup([]byte(key), now, burst)
			ok, me := m.lookup(key, now, burst, false)
			if (r == Held) != ok || e != me {
				t.Fatalf("op %d lookup %s at %d: zone %v/%d, model ok=%v/%d", i, key, now, r, e, ok, me)
			}
			if ok {
				if c, mc := h.Commit(now), m.commit(key, now); c != mc {
					t.Fatalf("op %d commit %s: zone %d, model %d", i, key, c, mc)
				}
			}
		default: // an earlier limit_req whose request a later one rejected
			r, _, h := z.Lookup([]byte(key), now, burst)
			if ok, _ := m.lookup(key, now, burst, false); (r == Held) != ok {
				t.Fatalf("op %d lookup/release %s: zone %v, model ok=%v", i, key, r, ok)
			}
			h.Release()
		}

		// Churn through a 170-node zone with up to 256 keys.
		if now != smallNow {
			smallNow, passesAt = now, map[string]int64{}
		}
		sk := fmt.Sprintf("%d", int(op)*int(arg)%256)
		if r, _ := small.Decide([]byte(sk), now, burst, NoDelay); r == Passed {
			if passesAt[sk]++; passesAt[sk] > 1+burst {
				// Only an eviction may reset a key, and only forcibly
				// when the zone is full.
				if small.Len() < small.Capacity(8) {
					t.Fatalf("key %s passed %d times at %d with burst %d", sk, passesAt[sk], now, burst)
				}
			}
		}
	}
	checkReqZone(t, z)
	checkReqZone(t, small)
	if z.Len() != len(m.nodes) {
		t.Fatalf("zone has %d keys, model %d", z.Len(), len(m.nodes))
	}
}

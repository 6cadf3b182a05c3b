package limiter

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func workers() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

// With a frozen clock exactly 1+burst requests per key pass, however many
// event loops race for the key.
func TestConcurrentOneKeyExact(t *testing.T) {
	z := NewReqZone("one", mib, 5000)
	const burst = 50
	var passed, rejected atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < workers(); g++ {
		wg.Go(func() {
			key := []byte("hot-client")
			for i := 0; i < 500; i++ {
				switch one(z, string(key), 7777, burst, NoDelay).Status {
				case ReqPassed:
					passed.Add(1)
				case ReqRejected:
					rejected.Add(1)
				default:
					t.Error("unexpected status")
				}
			}
		})
	}
	wg.Wait()
	if passed.Load() != 1+burst || passed.Load()+rejected.Load() != int64(workers()*500) {
		t.Fatalf("passed %d rejected %d, want %d passed", passed.Load(), rejected.Load(), 1+burst)
	}
}

func TestConcurrentManyKeysExact(t *testing.T) {
	z := NewReqZone("many", 4*mib, 5000)
	const keys, burst = 2000, 3
	var passed [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < workers(); g++ {
		wg.Go(func() {
			key := make([]byte, 4)
			for round := 0; round < 3; round++ {
				for i := 0; i < keys; i++ {
					k := (i*7 + g*131) % keys
					key[0], key[1], key[2], key[3] = 192, 168, byte(k>>8), byte(k)
					if r, _ := z.Decide(key, 42, burst, NoDelay); r == Passed {
						passed[k].Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	for k := range passed {
		if passed[k].Load() != 1+burst {
			t.Fatalf("key %d passed %d times, want %d", k, passed[k].Load(), 1+burst)
		}
	}
	checkReqZone(t, z)
}

// Two limit_req in a location, hammered concurrently with a moving clock:
// the last zone stays exact and no pin leaks (which would block eviction
// forever).
func TestConcurrentTwoPhaseNoLeakedPins(t *testing.T) {
	a := newReqZone("a", 2*pageCost(reqHdr+1), 1000, 1)
	b := NewReqZone("b", mib, 1000)
	limits := []ReqLimit{{Zone: a, Burst: 5}, {Zone: b, Burst: 2}}
	var passedB [16]atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < workers(); g++ {
		wg.Go(func() {
			keys := [][]byte{make([]byte, 8), make([]byte, 1)}
			for i := 0; i < 3000; i++ {
				copy(keys[0], ipKey((i*g)%400)) // 400 keys churn through a 170-key zone
				keys[1][0] = byte(i % 16)
				if CheckReq(limits, keys, 0, false).Status != ReqRejected {
					passedB[i%16].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range passedB {
		if passedB[k].Load() > 3 {
			t.Fatalf("zone b key %d passed %d times, burst 2 allows 3", k, passedB[k].Load())
		}
	}
	checkReqZone(t, a)
	checkReqZone(t, b)
}

func TestConcurrentConnZone(t *testing.T) {
	z := NewConnZone("addr", mib)
	const keys, limit = 8, 3
	var inflight [keys]atomic.Int64
	var refused atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < workers(); g++ {
		wg.Go(func() {
			key := []byte("client-0")
			for i := 0; i < 3000; i++ {
				k := (i + g) % keys
				key[7] = byte('0' + k)
				ok, tok := z.Acquire(key, limit)
				if !ok {
					refused.Add(1)
					continue
				}
				if n := inflight[k].Add(1); n > limit {
					t.Errorf("key %d: %d requests in progress, limit %d", k, n, limit)
				}
				runtime.Gosched()
				inflight[k].Add(-1)
				z.Release(tok)
			}
		})
	}
	wg.Wait()
	if z.Len() != 0 {
		t.Fatalf("%d nodes left after every request finished", z.Len())
	}
	t.Logf("refused %d of %d", refused.Load(), workers()*3000)
}

// checkReqZone verifies the structure: LRU and index agree with the live
// count, every indexed node is found by its own key, nothing stays pinned.
func checkReqZone(t testing.TB, z *ReqZone) {
	t.Helper()
	for si := range z.shards {
		s := &z.shards[si].reqShard
		s.mu.Lock()
		n := 0
		for off := s.lruHead; off != 0; off = lruNext(s.t.arena[off-1+wLRU]) {
			if pins := uint32(s.t.arena[off-1+1]); pins != 0 {
				t.Errorf("shard %d: node pinned %d times at rest", si, pins)
			}
			n++
		}
		if err := s.t.check(n); err != nil {
			t.Errorf("shard %d: %v", si, err)
		}
		s.mu.Unlock()
	}
}

func (t *table) nodeKey(off uint32) []byte {
	n := t.keyLen(off)
	b := make([]byte, 0, keyWords(n)*8)
	for _, w := range t.arena[off+t.hdr : off+t.hdr+uint32(keyWords(n))] {
		b = append(b, byte(w), byte(w>>8), byte(w>>16), byte(w>>24), byte(w>>32), byte(w>>40), byte(w>>48), byte(w>>56))
	}
	return b[:n]
}

func (t *table) check(listed int) error {
	if listed >= 0 && listed != t.live {
		return fmt.Errorf("%d nodes listed, %d live", listed, t.live)
	}
	slots := 0
	for _, s := range t.index {
		if s == 0 {
			continue
		}
		slots++
		off := uint32(s) - 1
		if uint32(t.arena[off]) != uint32(s>>32) {
			return fmt.Errorf("slot tag does not match node hash")
		}
		if got, _, ok := t.find(t.nodeKey(off), t.arena[off]); !ok || got != off {
			return fmt.Errorf("node at %d not found by its key", off)
		}
	}
	if slots != t.live {
		return fmt.Errorf("%d index slots, %d live", slots, t.live)
	}
	live := 0
	for _, p := range t.pages {
		if int(p.class) < numClasses {
			live += int(p.live)
		} else if p.class == pageLargeHead {
			live++
		}
	}
	if live != t.live {
		return fmt.Errorf("pages hold %d nodes, %d live", live, t.live)
	}
	return nil
}

package limiter

import (
	"testing"
)

func TestZeroAllocs(t *testing.T) {
	z := NewReqZone("one", mib, 5000)
	key := []byte{10, 1, 2, 3}
	z.Decide(key, 0, 10, NoDelay)
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		now++
		z.Decide(key, now, 10, NoDelay)
	}); n != 0 {
		t.Errorf("Decide on an existing key: %v allocs", n)
	}

	// A full zone in steady state: every request is a new key that evicts the
	// LRU one and reuses its slot.
	full := smallZone(5000)
	keys := make([][]byte, 4*full.Capacity(8))
	for i := range keys {
		keys[i] = []byte(ipKey(i))
	}
	for i := 0; i < full.Capacity(8); i++ {
		full.Decide(keys[i], 0, 0, 0)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		full.Decide(keys[i%len(keys)], 1, 0, 0)
	}); n != 0 {
		t.Errorf("Decide inserting into a full zone: %v allocs", n)
	}

	other := NewReqZone("two", mib, 1000)
	limits := []ReqLimit{{Zone: other, Burst: 1 << 30}, {Zone: z, Burst: 1 << 30, Delay: 2}}
	pair := [][]byte{key, key}
	if n := testing.AllocsPerRun(1000, func() {
		now++
		if d := CheckReq(limits, pair, now, false); d.Status.String() == "" {
			t.Fatal("no status")
		}
	}); n != 0 {
		t.Errorf("CheckReq with two zones: %v allocs", n)
	}

	c := NewConnZone("addr", mib)
	if n := testing.AllocsPerRun(1000, func() {
		_, a := c.Acquire(key, 2) // creates the node
		_, b := c.Acquire(key, 2)
		c.Release(a)
		c.Release(b) // frees it
	}); n != 0 {
		t.Errorf("ConnZone acquire/release: %v allocs", n)
	}
}

package cachestore

import (
	"math/bits"
	"sync/atomic"
)

// UseCounter counts requests per key for proxy_cache_min_uses in a fixed
// amount of memory: a count-min sketch of 4 rows of 32-bit counters.
//
// nginx keeps fcn->uses in the key's shared-memory node, which lives until
// inactive=; a sketch instead never forgets a key outright but halves all
// counters after every 10×width increments (TinyLFU's aging), so old
// counts fade. Its counts can only be too high (hash collisions), never too
// low: a key may be cached a little before its min_uses-th request, never
// later. Touch and Count are lock-free and allocate nothing; any goroutine
// may call them. The zero value is not usable; use NewUseCounter.
type UseCounter struct {
	rows  [4][]atomic.Uint32
	mask  uint64
	ops   atomic.Uint64
	reset uint64
}

// NewUseCounter sizes the sketch for about n distinct keys (width n/4
// rounded up to a power of two, between 1024 and 2^20).
func NewUseCounter(n int) *UseCounter {
	w := min(max(n/4, 1024), 1<<20)
	w = 1 << bits.Len(uint(w-1))
	c := &UseCounter{mask: uint64(w - 1), reset: uint64(10 * w)}
	for i := range c.rows {
		c.rows[i] = make([]atomic.Uint32, w)
	}
	return c
}

// seeds make the four row indexes of one hash independent enough.
var seeds = [4]uint64{0x9e3779b97f4a7c15, 0xc2b2ae3d27d4eb4f, 0x165667b19e3779f9, 0xd6e8feb86659fd93}

func (c *UseCounter) slot(hash uint64, i int) *atomic.Uint32 {
	h := (hash ^ seeds[i]) * 0xff51afd7ed558ccd
	h ^= h >> 33
	return &c.rows[i][h&c.mask]
}

// Touch counts one use of the key with this hash and returns its estimated
// count including this use.
func (c *UseCounter) Touch(hash uint64) uint32 {
	est := ^uint32(0)
	for i := range c.rows {
		s := c.slot(hash, i)
		v := s.Load()
		if v != ^uint32(0) {
			v = s.Add(1)
		}
		est = min(est, v)
	}
	if c.ops.Add(1)%c.reset == 0 {
		c.age()
	}
	return est
}

// Count returns the key's estimated count without counting a use.
func (c *UseCounter) Count(hash uint64) uint32 {
	est := ^uint32(0)
	for i := range c.rows {
		est = min(est, c.slot(hash, i).Load())
	}
	return est
}

// age halves every counter. Concurrent Touches may lose an increment to the
// halving, which only makes the count lower by one.
func (c *UseCounter) age() {
	for i := range c.rows {
		for j := range c.rows[i] {
			s := &c.rows[i][j]
			if v := s.Load(); v != 0 {
				s.Store(v >> 1)
			}
		}
	}
}

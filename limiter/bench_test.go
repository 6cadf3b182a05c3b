package limiter

import (
	"sync/atomic"
	"testing"
)

// Benchmarks pass an advancing clock and a burst that always accepts, so every
// decision takes the full update path.

func BenchmarkDecideOneKey(b *testing.B) {
	z := NewReqZone("one", 10*mib, 1_000_000)
	key := []byte{10, 0, 0, 1}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		z.Decide(key, int64(i), 1<<40, NoDelay)
	}
}

func BenchmarkDecideOneKeyParallel(b *testing.B) {
	z := NewReqZone("one", 10*mib, 1_000_000)
	var clock atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := []byte{10, 0, 0, 1}
		for pb.Next() {
			z.Decide(key, clock.Load(), 1<<40, NoDelay)
		}
	})
}

func manyKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
	}
	return keys
}

func BenchmarkDecideManyKeysParallel(b *testing.B) {
	z := NewReqZone("many", 10*mib, 1_000_000)
	keys := manyKeys(100_000) // fits: 10 MiB holds ~177,000 IPv4 keys
	for _, k := range keys {
		z.Decide(k, 0, 1<<40, NoDelay)
	}
	var seed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i += 1
			z.Decide(keys[i%len(keys)], int64(i), 1<<40, NoDelay)
		}
	})
}

// Every decision is a new key evicting the LRU one in a full zone.
func BenchmarkDecideChurnFullZoneParallel(b *testing.B) {
	z := NewReqZone("churn", mib, 1_000_000)
	keys := manyKeys(4 * z.Capacity(4))
	var seed atomic.Int64
	for i := range z.Capacity(4) {
		z.Decide(keys[i], 0, 1<<40, NoDelay)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1 << 14))
		for pb.Next() {
			i++
			z.Decide(keys[i%len(keys)], 1, 1<<40, NoDelay)
		}
	})
}

func BenchmarkCheckReqTwoZonesParallel(b *testing.B) {
	a, z := NewReqZone("a", 10*mib, 1_000_000), NewReqZone("b", 10*mib, 1_000_000)
	limits := []ReqLimit{{Zone: a, Burst: 1 << 40}, {Zone: z, Burst: 1 << 40, Delay: NoDelay}}
	all := manyKeys(10_000)
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		pair := make([][]byte, 2)
		for pb.Next() {
			i++
			pair[0], pair[1] = all[i%len(all)], all[(i*3)%len(all)]
			CheckReq(limits, pair, int64(i), false)
		}
	})
}

func BenchmarkConnAcquireReleaseParallel(b *testing.B) {
	z := NewConnZone("addr", 10*mib)
	all := manyKeys(10_000)
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i++
			if ok, tok := z.Acquire(all[i%len(all)], 100); ok {
				z.Release(tok)
			}
		}
	})
}

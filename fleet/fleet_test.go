package fleet

import (
	"net"
	"testing"
	"time"

	"edgeproxy/limiter"
)

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// Counting an accepted request of a known key allocates nothing.
func TestAcceptedAllocs(t *testing.T) {
	z := limiter.NewReqZone("a", 1<<20, 5000)
	l := New(z, deadAddr(t), time.Hour)
	defer l.Stop()
	key := []byte{127, 0, 0, 1}
	l.Accepted(key)
	if n := testing.AllocsPerRun(1000, func() { l.Accepted(key) }); n != 0 {
		t.Fatalf("Accepted allocates %v times per request", n)
	}
}

// The whole limit_req decision with a fleet observer stays allocation-free.
func TestCheckReqWithFleetAllocs(t *testing.T) {
	z := limiter.NewReqZone("b", 1<<20, 1000*1000)
	l := New(z, deadAddr(t), time.Hour)
	defer l.Stop()
	z.SetObserver(l)
	limits := []limiter.ReqLimit{{Zone: z, Burst: 1 << 30}}
	keys := [][]byte{{10, 0, 0, 1}}
	limiter.CheckReq(limits, keys, limiter.NowMillis(), false)
	if n := testing.AllocsPerRun(1000, func() { limiter.CheckReq(limits, keys, limiter.NowMillis(), false) }); n != 0 {
		t.Fatalf("CheckReq with a fleet observer allocates %v times", n)
	}
}

// Charge makes the local bucket account for requests accepted elsewhere.
func TestChargeFillsTheBucket(t *testing.T) {
	z := limiter.NewReqZone("c", 1<<20, 1000) // 1 r/s
	key := []byte("k")
	if r, _ := z.Decide(key, 1000, 0, limiter.NoDelay); r != limiter.Passed {
		t.Fatalf("first request: %v", r)
	}
	z.Charge(key, 1000, 5) // five requests on other nodes meanwhile
	if r, _ := z.Decide(key, 2000, 0, limiter.NoDelay); r != limiter.Busy {
		t.Fatalf("after 5 remote requests, one second later: %v, want Busy", r)
	}
	if r, _ := z.Decide(key, 7000, 0, limiter.NoDelay); r != limiter.Passed {
		t.Fatalf("once drained: %v, want Passed", r)
	}
}

func BenchmarkCheckReq(b *testing.B) {
	for _, fleet := range []bool{false, true} {
		name := "local"
		if fleet {
			name = "fleet"
		}
		b.Run(name, func(b *testing.B) {
			z := limiter.NewReqZone(name, 1<<20, 1000*1000)
			if fleet {
				l := New(z, deadAddr(b), time.Hour)
				defer l.Stop()
				z.SetObserver(l)
			}
			limits := []limiter.ReqLimit{{Zone: z, Burst: 1 << 30}}
			keys := [][]byte{{10, 0, 0, 1}}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				limiter.CheckReq(limits, keys, limiter.NowMillis(), false)
			}
		})
	}
}

// limit_conn with a fleet observer stays allocation-free for a known key.
func TestConnAcquireWithFleetAllocs(t *testing.T) {
	z := limiter.NewConnZone("cf", 1<<20)
	l := NewConnLimiter(z, deadAddr(t), time.Hour)
	defer l.Stop()
	z.SetObserver(l)
	key := []byte{10, 0, 0, 2}
	ok, tok := z.Acquire(key, 10)
	z.Release(tok)
	if !ok {
		t.Fatal("refused")
	}
	if n := testing.AllocsPerRun(1000, func() {
		_, tok := z.Acquire(key, 10)
		z.Release(tok)
	}); n != 0 {
		t.Fatalf("Acquire+Release with a fleet observer allocates %v times", n)
	}
}

// The other nodes' counts make the zone refuse earlier.
func TestConnRemoteCounts(t *testing.T) {
	z := limiter.NewConnZone("cr", 1<<20)
	key := []byte("k")
	z.SetRemote(map[uint64]int32{z.Hash(key): 2})
	if ok, _ := z.Acquire(key, 3); !ok {
		t.Fatal("1 local + 2 remote of 3: refused")
	}
	if ok, _ := z.Acquire(key, 3); ok {
		t.Fatal("2 local + 2 remote of 3: admitted")
	}
	z.SetRemote(nil)
	if ok, _ := z.Acquire(key, 3); !ok {
		t.Fatal("without remote counts: refused")
	}
}

package cachestore

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLockSingleLeader(t *testing.T) {
	z := newTestZone(t)
	k := []byte("/popular")
	h := Hash(k)
	var leaders, served atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	var leaderMu sync.Mutex
	var release func()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			leader, wait, rel := z.Lock(k, h, 5*time.Second)
			if leader {
				leaders.Add(1)
				leaderMu.Lock()
				release = rel
				leaderMu.Unlock()
				return
			}
			<-wait
			served.Add(1)
		}()
	}
	close(start)
	// Let every goroutine reach Lock, then the leader "stores" and releases.
	deadline := time.Now().Add(5 * time.Second)
	for leaders.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	leaderMu.Lock()
	rel := release
	leaderMu.Unlock()
	rel()
	rel() // idempotent
	wg.Wait()
	if leaders.Load() != 1 || served.Load() != 49 {
		t.Fatalf("leaders %d, waiters woken %d", leaders.Load(), served.Load())
	}
	// After release the next miss leads again.
	if leader, _, r := z.Lock(k, h, time.Second); !leader {
		t.Fatal("lock not released")
	} else {
		r()
	}
}

func TestLockTimeout(t *testing.T) {
	z := newTestZone(t)
	k := []byte("/slow")
	h := Hash(k)
	leader, _, release := z.Lock(k, h, 30*time.Millisecond)
	if !leader {
		t.Fatal("first caller must lead")
	}
	defer release()
	l2, wait, _ := z.Lock(k, h, 30*time.Millisecond)
	if l2 {
		t.Fatal("second caller led")
	}
	select {
	case <-wait:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken at lock timeout")
	}
	// The expired lock lets the next request fetch (proxy_cache_lock_age).
	if l3, _, r3 := z.Lock(k, h, time.Second); !l3 {
		t.Fatal("no new leader after lock age")
	} else {
		r3()
	}
}

func TestLockWaiterAllocs(t *testing.T) {
	z := newTestZone(t)
	k := []byte("/k")
	h := Hash(k)
	_, _, release := z.Lock(k, h, 0)
	defer release()
	if n := testing.AllocsPerRun(1000, func() { z.Lock(k, h, 0) }); n != 0 {
		t.Fatalf("waiter allocates %v", n)
	}
}

func TestMinUses(t *testing.T) {
	z := newTestZone(t)
	h := Hash([]byte("/k"))
	if !z.CountUse(h, 1) || !z.CountUse(h, 0) {
		t.Fatal("min_uses 1 is always true")
	}
	for i := 1; i < 3; i++ {
		if z.CountUse(h, 3) {
			t.Fatalf("cacheable after %d uses", i)
		}
	}
	if !z.CountUse(h, 3) {
		t.Fatal("not cacheable at the 3rd use")
	}
	// Independent keys do not inflate each other much (count-min: only
	// over-estimates), and aging halves counts.
	c := NewUseCounter(1024)
	for i := 0; i < 1000; i++ {
		c.Touch(uint64(i) * 0x9e3779b97f4a7c15)
	}
	if n := c.Count(Hash([]byte("never seen"))); n > 1 {
		t.Fatalf("unseen key estimated at %d", n)
	}
	hot := Hash([]byte("hot"))
	for i := 0; i < 100; i++ {
		c.Touch(hot)
	}
	before := c.Count(hot)
	c.age()
	if after := c.Count(hot); after != before/2 {
		t.Fatalf("aging %d → %d", before, after)
	}
}

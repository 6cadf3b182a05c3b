package limiter

import "testing"

// Decisions are counted on the zone that made them.
func TestZoneStats(t *testing.T) {
	z := NewReqZone("one", 1<<20, 1000) // 1r/s
	limits := []ReqLimit{{Zone: z, Burst: 1, Delay: NoDelay}}
	key := [][]byte{[]byte("k")}
	for i := 0; i < 4; i++ {
		CheckReq(limits, key, 0, false) // passed, passed (burst), rejected, rejected
	}
	CheckReq(limits, key, 0, true) // rejected, dry run
	delayed := []ReqLimit{{Zone: z, Burst: 5}}
	CheckReq(delayed, [][]byte{[]byte("d")}, 0, false) // passed
	CheckReq(delayed, [][]byte{[]byte("d")}, 0, false) // delayed
	want := ReqStats{Passed: 3, Rejected: 2, RejectedDryRun: 1, Delayed: 1}
	if got := z.Stats(); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	cz := NewConnZone("c", 1<<20)
	ok1, t1 := cz.Acquire([]byte("k"), 1)
	ok2, _ := cz.Acquire([]byte("k"), 1)
	cz.Release(t1)
	if !ok1 || ok2 {
		t.Fatal("limit_conn 1")
	}
	if got := cz.Stats(); got != (ConnStats{Passed: 1, Rejected: 1}) {
		t.Fatalf("conn stats %+v", got)
	}
}

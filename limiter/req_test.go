package limiter

import (
	"fmt"
	"strings"
	"testing"
)

const mib = 1 << 20

// one runs a request through a single "limit_req zone=z burst=b [delay]"
// location, the way the proxy will.
func one(z *ReqZone, key string, now, burst, delay int64) ReqDecision {
	return CheckReq([]ReqLimit{{Zone: z, Burst: burst, Delay: delay}}, [][]byte{[]byte(key)}, now, false)
}

// count sends n requests at the same instant and tallies the statuses.
func count(z *ReqZone, key string, now, burst, delay int64, n int) map[ReqStatus]int {
	got := map[ReqStatus]int{}
	for i := 0; i < n; i++ {
		got[one(z, key, now, burst, delay).Status]++
	}
	return got
}

func mustRate(t testing.TB, s string) int64 {
	t.Helper()
	r, err := ParseRate(s)
	if err != nil {
		t.Fatalf("ParseRate(%q): %v", s, err)
	}
	return r
}

// limit_req_zone $binary_remote_addr zone=one:1m rate=5r/s;
// limit_req zone=one burst=10 nodelay;
func TestSeedBurstNodelay(t *testing.T) {
	z := NewReqZone("one", mib, mustRate(t, "5r/s"))
	const t0 = 1_000_000

	got := count(z, "10.0.0.1", t0, 10, NoDelay, 20)
	if got[ReqPassed] != 11 || got[ReqRejected] != 9 || len(got) != 2 {
		t.Fatalf("20 instant requests: got %v, want 11 PASSED, 9 REJECTED", got)
	}

	// 200 ms at 5 r/s drains exactly one request.
	got = count(z, "10.0.0.1", t0+200, 10, NoDelay, 5)
	if got[ReqPassed] != 1 || got[ReqRejected] != 4 {
		t.Fatalf("after 200ms: got %v, want 1 PASSED, 4 REJECTED", got)
	}

	// 199 ms later is not enough for another one (integer milli-requests).
	if s := one(z, "10.0.0.1", t0+399, 10, NoDelay).Status; s != ReqRejected {
		t.Fatalf("after 199ms more: %v, want REJECTED", s)
	}

	// 2 s drains the whole burst: 10 more pass.
	got = count(z, "10.0.0.1", t0+200+2000, 10, NoDelay, 15)
	if got[ReqPassed] != 10 || got[ReqRejected] != 5 {
		t.Fatalf("after 2s: got %v, want 10 PASSED, 5 REJECTED", got)
	}
}

func TestRejectedReportsExcessAndZone(t *testing.T) {
	z := NewReqZone("one", mib, 5000)
	for i := 0; i < 3; i++ {
		one(z, "k", 0, 2, NoDelay)
	}
	d := one(z, "k", 0, 2, NoDelay)
	// nginx logs "limiting requests, excess: 3.000 by zone "one"".
	if d.Status != ReqRejected || d.Excess != 3000 || d.Zone != z || d.NoMemory {
		t.Fatalf("got %+v, want REJECTED excess 3000 by zone one", d)
	}
}

// limit_req zone=one burst=10; (no nodelay: every excess request is paced)
func TestDelayPacingDefault(t *testing.T) {
	z := NewReqZone("one", mib, mustRate(t, "5r/s"))
	var delays []int64
	for i := 0; i < 12; i++ {
		d := one(z, "c", 5000, 10, 0)
		if i == 0 && d.Status != ReqPassed {
			t.Fatalf("first request: %v, want PASSED", d.Status)
		}
		if i > 0 && i < 11 && d.Status != ReqDelayed {
			t.Fatalf("request %d: %v, want DELAYED", i+1, d.Status)
		}
		if i == 11 && d.Status != ReqRejected {
			t.Fatalf("request 12: %v, want REJECTED", d.Status)
		}
		delays = append(delays, d.DelayMs)
	}
	want := []int64{0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000, 0}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
}

// limit_req zone=one burst=10 delay=3;
func TestDelayPacingDelayN(t *testing.T) {
	z := NewReqZone("one", mib, mustRate(t, "5r/s"))
	var got []string
	for i := 0; i < 12; i++ {
		d := one(z, "c", 5000, 10, 3)
		got = append(got, fmt.Sprintf("%v:%d", d.Status, d.DelayMs))
	}
	want := "PASSED:0 PASSED:0 PASSED:0 PASSED:0 DELAYED:200 DELAYED:400 DELAYED:600 " +
		"DELAYED:800 DELAYED:1000 DELAYED:1200 DELAYED:1400 REJECTED:0"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	// The last client waits its 1400 ms; by then 7 requests have drained.
	if d := one(z, "c", 5000+1400, 10, 3); d.Status != ReqDelayed || d.DelayMs != 200 {
		t.Fatalf("after waiting 1400ms: %v %dms, want DELAYED 200ms", d.Status, d.DelayMs)
	}
}

func TestDecideAndDelayMs(t *testing.T) {
	z := NewReqZone("z", mib, 2000)
	if r, e := z.Decide([]byte("k"), 0, 5, 1); r != Passed || e != 0 {
		t.Fatalf("first: %v %d", r, e)
	}
	if r, e := z.Decide([]byte("k"), 0, 5, 1); r != Passed || e != 1000 {
		t.Fatalf("second: %v %d", r, e)
	}
	r, e := z.Decide([]byte("k"), 0, 5, 1)
	if r != Delayed || e != 2000 || z.DelayMs(e, 1) != 500 {
		t.Fatalf("third: %v excess %d delay %d, want delayed 2000 500ms", r, e, z.DelayMs(e, 1))
	}
	if z.DelayMs(e, NoDelay) != 0 {
		t.Fatal("nodelay must never delay")
	}
}

func TestRatePerMinute(t *testing.T) {
	z := NewReqZone("m", mib, mustRate(t, "30r/m")) // 500 milli-req/s: one per 2 s
	if one(z, "k", 10_000, 0, 0).Status != ReqPassed {
		t.Fatal("first request must pass")
	}
	for _, c := range []struct {
		at   int64
		want ReqStatus
	}{{10_001, ReqRejected}, {11_999, ReqRejected}, {12_000, ReqPassed}, {12_001, ReqRejected}, {14_000, ReqPassed}} {
		if got := one(z, "k", c.at, 0, 0).Status; got != c.want {
			t.Fatalf("at %d: %v, want %v", c.at, got, c.want)
		}
	}

	// nginx stores 1r/m as 1000/60 = 16 milli-req/s, so it really means one
	// request per 62.5 s.
	z = NewReqZone("m", mib, mustRate(t, "1r/m"))
	one(z, "k", 0, 0, 0)
	if got := one(z, "k", 62_499, 0, 0).Status; got != ReqRejected {
		t.Fatalf("1r/m after 62.499s: %v, want REJECTED", got)
	}
	if got := one(z, "k", 62_500, 0, 0).Status; got != ReqPassed {
		t.Fatalf("1r/m after 62.5s: %v, want PASSED", got)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{"5r/s": 5000, "5": 5000, "30r/m": 500, "1r/m": 16, "100000r/s": 100_000_000} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "r/s", "0r/s", "-1r/s", "5r/h", "1.5r/s", "99999999999999999999r/s"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestKeysAreIndependent(t *testing.T) {
	z := NewReqZone("one", mib, 1000)
	a := count(z, "10.0.0.1", 0, 2, NoDelay, 10)
	b := count(z, "10.0.0.2", 0, 2, NoDelay, 10)
	if a[ReqPassed] != 3 || b[ReqPassed] != 3 {
		t.Fatalf("each client gets 1+burst: a=%v b=%v", a, b)
	}
	// Prefix keys and keys that differ only past the first word stay apart.
	k1, k2 := strings.Repeat("x", 20)+"1", strings.Repeat("x", 20)+"2"
	if one(z, k1, 0, 0, 0).Status != ReqPassed || one(z, k2, 0, 0, 0).Status != ReqPassed ||
		one(z, "x", 0, 0, 0).Status != ReqPassed {
		t.Fatal("distinct long keys merged")
	}
}

func TestEmptyAndOversizedKeysAreNotLimited(t *testing.T) {
	z := NewReqZone("one", 10*mib, 1000)
	for i := 0; i < 5; i++ {
		d := one(z, "", 0, 0, 0)
		if d.Status != ReqStatusNone || d.Status.String() != "" {
			t.Fatalf("empty key: %+v, want no status", d)
		}
	}
	if r, _ := z.Decide(nil, 0, 0, 0); r != Declined {
		t.Fatalf("Decide(empty) = %v", r)
	}
	huge := make([]byte, MaxReqKeyLen+1)
	if r, _ := z.Decide(huge, 0, 0, 0); r != Declined {
		t.Fatalf("Decide(65536 bytes) = %v, want declined", r)
	}
	if z.Len() != 0 {
		t.Fatalf("nothing should be stored, Len = %d", z.Len())
	}
	// 65535 bytes is still limited (a multi-page node).
	max := make([]byte, MaxReqKeyLen)
	if r, _ := z.Decide(max, 0, 0, 0); r != Passed {
		t.Fatalf("first 65535-byte key: %v", r)
	}
	if r, _ := z.Decide(max, 0, 0, 0); r != Busy {
		t.Fatalf("second 65535-byte key: %v, want busy", r)
	}
}

func TestClockQuirks(t *testing.T) {
	z := NewReqZone("one", mib, mustRate(t, "1000r/s")) // 1 ms drains one request
	one(z, "k", 100_000, 0, 0)
	// A clock step back of up to 60 s counts as no time passing.
	if s := one(z, "k", 99_000, 0, 0).Status; s != ReqRejected {
		t.Fatalf("1s back: %v, want REJECTED", s)
	}
	// A step back of more than 60 s counts as 1 ms (nginx's "ms = 1")...
	if s := one(z, "k", 30_000, 0, 0).Status; s != ReqPassed {
		t.Fatalf("70s back: %v, want PASSED", s)
	}
	// ...and the key's clock restarts from there.
	if s := one(z, "k", 30_000, 0, 0).Status; s != ReqRejected {
		t.Fatalf("same instant after the reset: %v, want REJECTED", s)
	}
	if s := one(z, "k", 30_001, 0, 0).Status; s != ReqPassed {
		t.Fatalf("1ms after the reset: %v, want PASSED", s)
	}
}

// limit_req zone=perip burst=1; limit_req zone=perserver;  (burst 0)
// A request refused by the second zone must not use up the first one.
func TestMultipleLimitsRollBackEarlierZones(t *testing.T) {
	perIP := NewReqZone("perip", mib, 1000)
	perServer := NewReqZone("perserver", mib, 1000)
	limits := []ReqLimit{{Zone: perIP, Burst: 1}, {Zone: perServer}}
	req := func(ip, server string) ReqDecision {
		return CheckReq(limits, [][]byte{[]byte(ip), []byte(server)}, 1_000_000, false)
	}
	if d := req("1.1.1.1", "a"); d.Status != ReqPassed {
		t.Fatalf("first: %+v", d)
	}
	for i := 0; i < 10; i++ {
		if d := req("1.1.1.1", "a"); d.Status != ReqRejected || d.Zone != perServer {
			t.Fatalf("server a is exhausted: %+v", d)
		}
	}
	// perip saw 10 rejected requests but was rolled back each time, so the
	// client still has its burst of 1 for another server...
	if d := req("1.1.1.1", "b"); d.Status != ReqDelayed || d.Zone != perIP || d.DelayMs != 1000 {
		t.Fatalf("second server: %+v, want DELAYED 1000ms by perip", d)
	}
	// ...and then it is used up.
	if d := req("1.1.1.1", "c"); d.Status != ReqRejected || d.Zone != perIP {
		t.Fatalf("third server: %+v, want REJECTED by perip", d)
	}
}

func TestMultipleLimitsLongestDelayWins(t *testing.T) {
	fast := NewReqZone("fast", mib, 10_000) // 10 r/s
	slow := NewReqZone("slow", mib, 1000)   // 1 r/s
	limits := []ReqLimit{{Zone: slow, Burst: 5}, {Zone: fast, Burst: 5}}
	keys := [][]byte{[]byte("k"), []byte("k")}
	const now = 1_000_000
	CheckReq(limits, keys, now, false)
	d := CheckReq(limits, keys, now, false)
	// Both have excess 1000: fast wants 100 ms, slow wants 1000 ms.
	if d.Status != ReqDelayed || d.DelayMs != 1000 || d.Zone != slow || d.Excess != 1000 {
		t.Fatalf("got %+v, want DELAYED 1000ms by slow", d)
	}
	// The last key empty: the earlier zone still accounts and delays.
	keys[1] = nil
	d = CheckReq(limits, keys, now, false)
	if d.Status != ReqDelayed || d.DelayMs != 2000 || d.Zone != slow {
		t.Fatalf("last key empty: %+v, want DELAYED 2000ms by slow", d)
	}
}

func TestLookupCommitRelease(t *testing.T) {
	z := NewReqZone("z", mib, 1000)
	r, _, h := z.Lookup([]byte("k"), 5000, 0)
	if r != Held || h.Zone() != z {
		t.Fatalf("Lookup = %v", r)
	}
	h.Release()
	h.Release() // no-op on the zero Hold
	// Released: the next lookup still sees an empty bucket.
	r, e, h := z.Lookup([]byte("k"), 5000, 0)
	if r != Held || e != 0 {
		t.Fatalf("after release: %v %d", r, e)
	}
	if got := h.Commit(5000); got != 0 {
		t.Fatalf("commit of a new node drains to 0 (last = 0), got %d", got)
	}
	if got := h.Commit(5000); got != 0 || h.Zone() != nil {
		t.Fatal("second commit must be a no-op")
	}
	if r, _, _ := z.Lookup([]byte("k"), 5000, 0); r != Busy {
		t.Fatalf("after commit: %v, want busy", r)
	}
}

func TestDryRun(t *testing.T) {
	// Same traffic through a dry-run and an enforcing zone: dry run never
	// rejects or delays, but the buckets evolve identically (nginx runs the
	// full lookup/account either way).
	real := NewReqZone("real", mib, 5000)
	dry := NewReqZone("dry", mib, 5000)
	mapDry := map[ReqStatus]ReqStatus{ReqPassed: ReqPassed, ReqDelayed: ReqDelayedDryRun, ReqRejected: ReqRejectedDryRun}
	seen := map[ReqStatus]bool{}
	for i, now := 0, int64(0); i < 200; i, now = i+1, now+int64(i%7)*13 {
		a := CheckReq([]ReqLimit{{Zone: real, Burst: 4, Delay: 2}}, [][]byte{[]byte("k")}, now, false)
		b := CheckReq([]ReqLimit{{Zone: dry, Burst: 4, Delay: 2}}, [][]byte{[]byte("k")}, now, true)
		if b.Status != mapDry[a.Status] || b.DelayMs != 0 || b.Excess != a.Excess {
			t.Fatalf("request %d: enforcing %+v, dry run %+v", i, a, b)
		}
		seen[b.Status] = true
	}
	if !seen[ReqDelayedDryRun] || !seen[ReqRejectedDryRun] || !seen[ReqPassed] {
		t.Fatalf("test traffic did not exercise every status: %v", seen)
	}
	for s, want := range map[ReqStatus]string{ReqPassed: "PASSED", ReqDelayed: "DELAYED", ReqRejected: "REJECTED",
		ReqDelayedDryRun: "DELAYED_DRY_RUN", ReqRejectedDryRun: "REJECTED_DRY_RUN"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}

// smallZone has one shard of two 4 KiB pages: 170 keys of up to 8 bytes.
func smallZone(rate int64) *ReqZone {
	return newReqZone("small", 2*pageCost(reqHdr+1), rate, 1)
}

func ipKey(i int) string { return fmt.Sprintf("%08d", i) }

func TestZoneFullEvictsLeastRecentlyUsed(t *testing.T) {
	z := smallZone(1000)
	c := z.Capacity(8)
	if c != 170 {
		t.Fatalf("capacity %d, want 170 (2 pages of 85 48-byte nodes)", c)
	}
	for i := 0; i < c; i++ {
		if one(z, ipKey(i), 0, 0, 0).Status != ReqPassed {
			t.Fatalf("key %d refused before the zone was full", i)
		}
	}
	if z.Len() != c {
		t.Fatalf("Len %d, want %d", z.Len(), c)
	}
	// Every client is at its limit.
	one(z, ipKey(0), 1, 0, 0) // and key 0 becomes most recently used
	// A new client forces out the least recently used one, key 1, which
	// thereby loses its state: it passes again although its limit was hit.
	if s := one(z, "newcomer", 2, 0, 0).Status; s != ReqPassed {
		t.Fatalf("newcomer: %v, want PASSED (LRU eviction)", s)
	}
	if z.Len() != c {
		t.Fatalf("Len %d after eviction, want %d", z.Len(), c)
	}
	if s := one(z, ipKey(0), 3, 0, 0).Status; s != ReqRejected {
		t.Fatalf("recently used key 0: %v, want REJECTED (kept)", s)
	}
	if s := one(z, ipKey(1), 3, 0, 0).Status; s != ReqPassed {
		t.Fatalf("evicted key 1: %v, want PASSED (fresh state)", s)
	}
	if s := one(z, ipKey(3), 3, 0, 0).Status; s != ReqRejected {
		t.Fatalf("key 3: %v, want REJECTED (kept)", s)
	}
}

func TestIdleDrainedNodesExpireAfter60s(t *testing.T) {
	// 1r/m drains 960 milli-requests in 60 s. One shard, so the LRU order
	// below does not depend on hashing.
	z := newReqZone("one", mib, 16, 1)
	for i := 0; i < 3; i++ { // excess 2000: does not drain in 60 s
		one(z, "heavy", 0, 10, NoDelay)
	}
	one(z, "idle-a", 1, 0, 0)
	one(z, "idle-b", 2, 0, 0)
	// Before 60 s nothing is reclaimed.
	one(z, "x", 59_999, 0, 0)
	if z.Len() != 4 {
		t.Fatalf("Len %d, want 4", z.Len())
	}
	// At 60 s a new key reclaims at most two LRU nodes, and stops at the
	// first one that is still draining: "heavy" is the LRU and blocks.
	one(z, "y", 60_010, 0, 0)
	if z.Len() != 5 {
		t.Fatalf("Len %d, want 5 (heavy at the LRU tail blocks expiry)", z.Len())
	}
	// Once heavy is used again, idle-a and idle-b are at the tail and go.
	one(z, "heavy", 60_020, 10, NoDelay)
	one(z, "z", 60_030, 0, 0)
	if z.Len() != 4 {
		t.Fatalf("Len %d, want 4 (idle-a, idle-b expired)", z.Len())
	}
	if s := one(z, "idle-a", 60_040, 0, 0).Status; s != ReqPassed {
		t.Fatalf("expired idle-a: %v", s)
	}
}

func TestZoneFullWithPinnedTailRefuses(t *testing.T) {
	z := smallZone(1000)
	c := z.Capacity(8)
	// Another request holds "pinned" (first of two limit_req in a location).
	r, _, h := z.Lookup([]byte(ipKey(0)), 0, 0)
	if r != Held {
		t.Fatalf("lookup: %v", r)
	}
	for i := 1; i < c; i++ {
		one(z, ipKey(i), 0, 0, 0)
	}
	// The pinned node is now the LRU tail: nothing can be evicted and nginx
	// answers 503 "could not allocate node".
	d := one(z, "newcomer", 1, 0, 0)
	if d.Status != ReqRejected || !d.NoMemory {
		t.Fatalf("newcomer with pinned tail: %+v, want REJECTED (no memory)", d)
	}
	h.Release()
	if d := one(z, "newcomer", 2, 0, 0); d.Status != ReqPassed {
		t.Fatalf("after release: %+v, want PASSED", d)
	}
}

func TestZoneFullOfShortKeysRecoversForLongKeys(t *testing.T) {
	z := smallZone(1000)
	for i := 0; i < z.Capacity(8); i++ {
		one(z, ipKey(i), 0, 0, 0)
	}
	// A 100-byte key needs a bigger slot than the one a forced eviction frees;
	// like nginx's slab, the zone refuses until a whole page has drained
	// through the LRU (85 evictions, one per attempt).
	long := strings.Repeat("L", 100)
	refused := 0
	for one(z, long, 1, 0, 0).NoMemory {
		refused++
		if refused > 1000 {
			t.Fatal("never recovered")
		}
	}
	if refused != 84 {
		t.Fatalf("refused %d times, want 84", refused)
	}
	if s := one(z, long, 2, 0, 0).Status; s != ReqRejected {
		t.Fatalf("long key state kept: %v", s)
	}
}

func TestCapacityPerMiB(t *testing.T) {
	z := NewReqZone("one", mib, 1000)
	if b := z.Bytes(); b > mib {
		t.Fatalf("1 MiB zone reserves %d bytes", b)
	}
	c4, c16 := z.Capacity(4), z.Capacity(16)
	if c4 < 17_000 || c4 > 18_000 || c16 < 14_500 || c16 > 15_500 {
		t.Fatalf("keys per MiB: IPv4 %d, IPv6 %d", c4, c16)
	}
	t.Logf("1 MiB: %d IPv4 keys (%.1f B each), %d IPv6 keys (%.1f B each)",
		c4, float64(mib)/float64(c4), c16, float64(mib)/float64(c16))
	// Each shard has its own LRU, so a shard can fill before the zone does;
	// at 90% of the capacity no client may lose its state.
	key := make([]byte, 4)
	n := c4 * 9 / 10
	for i := 0; i < n; i++ {
		key[0], key[1], key[2], key[3] = 10, byte(i>>16), byte(i>>8), byte(i)
		z.Decide(key, 0, 0, 0)
	}
	for i := 0; i < n; i++ {
		key[0], key[1], key[2], key[3] = 10, byte(i>>16), byte(i>>8), byte(i)
		if r, _ := z.Decide(key, 0, 0, 0); r != Busy {
			t.Fatalf("client %d of %d lost its state: %v", i, n, r)
		}
	}
	if z.Len() != n {
		t.Fatalf("Len %d, want %d", z.Len(), n)
	}
}

// A hash collision must never merge two clients.
func TestHashCollisionsStayApart(t *testing.T) {
	z := smallZone(1000)
	z.hash = func([]byte) uint64 { return 0x1234_5678_9abc_def0 }
	for i := 0; i < 50; i++ {
		if s := one(z, ipKey(i), 0, 1, NoDelay).Status; s != ReqPassed {
			t.Fatalf("key %d first: %v", i, s)
		}
	}
	for i := 0; i < 50; i++ {
		if s := one(z, ipKey(i), 0, 1, NoDelay).Status; s != ReqPassed {
			t.Fatalf("key %d second: %v (burst 1)", i, s)
		}
		if s := one(z, ipKey(i), 0, 1, NoDelay).Status; s != ReqRejected {
			t.Fatalf("key %d third: %v", i, s)
		}
	}
	// Evicting colliding nodes (index backward shift over one long probe run)
	// keeps the others findable.
	for i := 50; i < 50+z.Capacity(8); i++ {
		one(z, ipKey(i), 1, 1, NoDelay)
	}
	for i := 50 + z.Capacity(8) - 10; i < 50+z.Capacity(8); i++ {
		if s := one(z, ipKey(i), 1, 1, NoDelay).Status; s != ReqPassed {
			t.Fatalf("colliding key %d second: %v", i, s)
		}
		if s := one(z, ipKey(i), 1, 1, NoDelay).Status; s != ReqRejected {
			t.Fatalf("colliding key %d lost its state: %v", i, s)
		}
	}
}

func TestNewReqZoneRejectsZeroRate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("rate 0 accepted")
		}
	}()
	NewReqZone("z", mib, 0)
}

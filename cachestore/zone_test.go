package cachestore

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestZone(t testing.TB, args ...string) *Zone {
	t.Helper()
	spec, err := ParsePath(append([]string{"/unused", "keys_zone=t:1m"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	z, err := NewZone(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	return z
}

func entry(key string, body string, at time.Time, ttl time.Duration) *Entry {
	return NewEntry(EntrySpec{
		Key: []byte(key), Status: 200, Head: []byte("Content-Type: text/plain\r\n"),
		Body: []byte(body), StoredAt: at, Decision: Decision{Cacheable: true, TTL: ttl},
		ETag: []byte(`"v1"`),
	})
}

// put stores e and waits for ristretto to apply it (tests only: production
// code never relies on reading its own writes).
func put(t testing.TB, z *Zone, e *Entry) {
	t.Helper()
	if !z.Set(e) {
		t.Fatal("Set dropped")
	}
	z.c.Wait()
}

func get(z *Zone, key string, now time.Time) (*Entry, Status) {
	k := []byte(key)
	return z.Get(k, Hash(k), now)
}

func TestHitExpiredMissTiming(t *testing.T) {
	z := newTestZone(t)
	if _, st := get(z, "k", t0); st != Miss {
		t.Fatalf("empty zone: %v", st)
	}
	put(t, z, entry("k", "hello", t0, time.Minute))
	e, st := get(z, "k", t0.Add(59*time.Second))
	if st != Hit || string(e.Body()) != "hello" || e.ContentLength() != 5 || string(e.ETag()) != `"v1"` {
		t.Fatalf("%v %v", st, e)
	}
	if e.Age(t0.Add(59*time.Second)) != 59*time.Second {
		t.Fatalf("age %v", e.Age(t0.Add(59*time.Second)))
	}
	// At valid_sec the entry is stale (RFC 9111 4.2: fresh while age < lifetime).
	if _, st := get(z, "k", t0.Add(time.Minute)); st != Expired {
		t.Fatalf("at expiry: %v", st)
	}
	// Expired entries stay until inactive=10m after the last access.
	if _, st := get(z, "k", t0.Add(9*time.Minute)); st != Expired {
		t.Fatalf("stale: %v", st)
	}
	// Accessed at 9m, so still there at 18m, gone at 19m.
	if _, st := get(z, "k", t0.Add(18*time.Minute)); st != Expired {
		t.Fatalf("18m: %v", st)
	}
	if _, st := get(z, "k", t0.Add(28*time.Minute+time.Second)); st != Miss {
		t.Fatalf("inactive: %v", st)
	}
	s := z.Stats()
	if s.Hits != 1 || s.Expired != 3 || s.Misses != 2 || s.Entries != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestStaleRules(t *testing.T) {
	e := NewEntry(EntrySpec{Key: []byte("k"), StoredAt: t0, Decision: Decision{Cacheable: true, TTL: time.Minute, StaleWhileRevalidate: 10 * time.Second, StaleIfError: time.Hour}})
	late := t0.Add(time.Minute + 5*time.Second)
	if e.Fresh(late) || !e.StaleWhileUpdating(late, false) || !e.StaleOnError(late, false) {
		t.Fatal("within stale windows")
	}
	later := t0.Add(2 * time.Minute)
	if e.StaleWhileUpdating(later, false) || !e.StaleWhileUpdating(later, true) || !e.StaleOnError(later, false) {
		t.Fatal("past stale-while-revalidate")
	}
	m := NewEntry(EntrySpec{Key: []byte("k"), StoredAt: t0, Decision: Decision{Cacheable: true, TTL: time.Minute, MustRevalidate: true}})
	if m.StaleWhileUpdating(later, true) || m.StaleOnError(later, true) {
		t.Fatal("must-revalidate served stale")
	}
}

func TestInactiveSweep(t *testing.T) {
	z := newTestZone(t, "inactive=1m")
	put(t, z, entry("old", "a", t0, time.Hour))
	put(t, z, entry("new", "b", t0.Add(50*time.Second), time.Hour))
	if n := z.expire(t0.Add(61 * time.Second)); n != 1 {
		t.Fatalf("expired %d", n)
	}
	z.c.Wait()
	if _, st := get(z, "old", t0.Add(61*time.Second)); st != Miss {
		t.Fatal("old survived")
	}
	if _, st := get(z, "new", t0.Add(61*time.Second)); st != Hit {
		t.Fatal("new lost")
	}
	if s := z.Stats(); s.Entries != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestCollisionNeverServesOtherKey(t *testing.T) {
	old := hashFn
	hashFn = func([]byte) uint64 { return 42 }
	defer func() { hashFn = old }()
	z := newTestZone(t)
	put(t, z, entry("/alice/private", "alice's data", t0, time.Hour))
	if e, st := get(z, "/bob/private", t0); st != Miss || e != nil {
		t.Fatalf("collision served %v %v", st, e)
	}
	// The second key replaces the first (one slot per hash); the first
	// then misses too, never returning bob's entry.
	put(t, z, entry("/bob/private", "bob's data", t0, time.Hour))
	if e, st := get(z, "/bob/private", t0); st != Hit || string(e.Body()) != "bob's data" {
		t.Fatalf("bob: %v", st)
	}
	if e, st := get(z, "/alice/private", t0); st != Miss || e != nil {
		t.Fatalf("alice got %v", e)
	}
	if z.Purge([]byte("/alice/private")) {
		t.Fatal("purged bob's entry through alice's key")
	}
	if s := z.Stats(); s.Entries != 1 {
		t.Fatalf("%+v", s)
	}
	// The lock distinguishes the keys too.
	l1, _, r1 := z.Lock([]byte("/alice"), 42, time.Second)
	l2, w2, r2 := z.Lock([]byte("/bob"), 42, time.Second)
	if !l1 || !l2 || w2 != nil {
		t.Fatal("colliding key waited on another key's fetch")
	}
	r2()
	r1()
}

func TestMaxSizeBoundsMemory(t *testing.T) {
	z := newTestZone(t, "max_size=1m") // keys_zone=1m: up to 8192 entries
	body := strings.Repeat("x", 4000)
	total := 0
	for i := 0; total < 10<<20; i++ {
		e := entry(fmt.Sprintf("/obj/%d", i), body, t0, time.Hour)
		z.Set(e)
		total += int(e.Size())
		if i%256 == 0 {
			z.c.Wait()
		}
	}
	z.c.Wait()
	s := z.Stats()
	if s.Bytes > 1<<20 || s.Bytes <= 0 || s.Entries <= 0 {
		t.Fatalf("inserted %d B, accounted %+v", total, s)
	}
	// The index agrees with ristretto's own accounting.
	if used := z.c.MaxCost() - z.c.RemainingCost(); used < s.Bytes || used > 1<<20 {
		t.Fatalf("ristretto uses %d, index %d", used, s.Bytes)
	}
	// Entries larger than max_size are refused outright.
	if z.Set(entry("/huge", strings.Repeat("y", 2<<20), t0, time.Hour)) {
		t.Fatal("stored an entry larger than max_size")
	}
}

func TestKeysZoneBoundsEntries(t *testing.T) {
	z := newTestZone(t) // 1m keys zone → 8192 entries, 8 MiB
	for i := 0; i < 40000; i++ {
		z.Set(entry(fmt.Sprintf("/tiny/%d", i), "t", t0, time.Hour))
		if i%256 == 0 {
			z.c.Wait()
		}
	}
	z.c.Wait()
	if s := z.Stats(); s.Entries > 8192 {
		t.Fatalf("%+v", s)
	}
}

func TestPurge(t *testing.T) {
	z := newTestZone(t)
	for _, k := range []string{"GET/a/1", "GET/a/2", "GET/a/3/x", "GET/b/1", "GET/ab"} {
		put(t, z, entry(k, k, t0, time.Hour))
	}
	if !z.Purge([]byte("GET/b/1")) || z.Purge([]byte("GET/b/1")) {
		t.Fatal("Purge result")
	}
	if _, st := get(z, "GET/b/1", t0); st != Miss {
		t.Fatal("purged entry served")
	}
	if n := z.PurgePrefix([]byte("GET/a/")); n != 3 {
		t.Fatalf("PurgePrefix removed %d", n)
	}
	for _, k := range []string{"GET/a/1", "GET/a/2", "GET/a/3/x"} {
		if _, st := get(z, k, t0); st != Miss {
			t.Fatalf("%s survived", k)
		}
	}
	if _, st := get(z, "GET/ab", t0); st != Hit {
		t.Fatal("GET/ab wrongly purged")
	}
	z.c.Wait()
	if s := z.Stats(); s.Entries != 1 {
		t.Fatalf("%+v", s)
	}
	// A purge racing with a pending Set cannot resurrect the key: the Set
	// that returned before PurgePrefix began is in the index.
	z.Set(entry("GET/a/9", "x", t0, time.Hour))
	z.PurgePrefix([]byte("GET/a/"))
	z.c.Wait()
	if _, st := get(z, "GET/a/9", t0); st != Miss {
		t.Fatal("pending Set resurrected a purged key")
	}
}

func TestReplaceKeepsAccounting(t *testing.T) {
	z := newTestZone(t)
	put(t, z, entry("k", "v1", t0, time.Hour))
	put(t, z, entry("k", "version two", t0, time.Hour))
	e, st := get(z, "k", t0)
	if st != Hit || string(e.Body()) != "version two" {
		t.Fatalf("%v", st)
	}
	if s := z.Stats(); s.Entries != 1 || s.Bytes != e.Size() {
		t.Fatalf("%+v vs %d", s, e.Size())
	}
}

// fakeReq implements RequestHeaders like *http1.Request: no allocation.
type fakeReq [][2]string

type bytesReq [][2][]byte

func (r bytesReq) NumHeaders() int                 { return len(r) }
func (r bytesReq) HeaderAt(i int) ([]byte, []byte) { return r[i][0], r[i][1] }

func (r fakeReq) bytes() bytesReq {
	b := make(bytesReq, len(r))
	for i, kv := range r {
		b[i] = [2][]byte{[]byte(kv[0]), []byte(kv[1])}
	}
	return b
}

func TestVariants(t *testing.T) {
	z := newTestZone(t)
	names := NormalizeVary(nil, [][]byte{[]byte("Accept-Encoding, Accept-Language")})
	if string(names) != "accept-encoding,accept-language" {
		t.Fatalf("%q", names)
	}
	store := func(req fakeReq, body string) {
		put(t, z, NewEntry(EntrySpec{
			Key: []byte("K"), Status: 200, Body: []byte(body), StoredAt: t0,
			Decision:  Decision{Cacheable: true, TTL: time.Hour},
			VaryNames: names, Variant: AppendVariant(nil, names, req.bytes()),
		}))
	}
	gz := fakeReq{{"Accept-Encoding", "gzip, br"}, {"Accept-Language", "en"}}
	id := fakeReq{{"Accept-Language", "en"}}
	store(gz, "gzipped")
	store(id, "plain")
	look := func(req fakeReq) (string, Status) {
		e, st, _ := z.Lookup([]byte("K"), Hash([]byte("K")), req.bytes(), nil, t0)
		if e == nil {
			return "", st
		}
		return string(e.Body()), st
	}
	// nginx's normalisation: "gzip,br" and "gzip, br" share a variant.
	if b, st := look(fakeReq{{"accept-encoding", "gzip,br"}, {"Accept-Language", "en"}}); st != Hit || b != "gzipped" {
		t.Fatalf("gzip variant: %q %v", b, st)
	}
	if b, st := look(id); st != Hit || b != "plain" {
		t.Fatalf("identity variant: %q %v", b, st)
	}
	if _, st := look(fakeReq{{"Accept-Language", "fr"}}); st != Miss {
		t.Fatalf("fr: %v", st)
	}
	// Purging the primary key purges every variant.
	if !z.Purge([]byte("K")) {
		t.Fatal("purge")
	}
	if _, st := look(gz); st != Miss {
		t.Fatal("variant survived purge")
	}
	z.c.Wait()
	if s := z.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestEntryCopiesInput(t *testing.T) {
	body := []byte("original")
	e := NewEntry(EntrySpec{Key: []byte("k"), Body: body, StoredAt: t0})
	copy(body, "XXXXXXXX")
	if !bytes.Equal(e.Body(), []byte("original")) {
		t.Fatal("entry aliases the caller's buffer")
	}
}

func TestGetAllocsZero(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	z := newTestZone(t)
	put(t, z, entry("/hot", "body", t0, time.Hour))
	k := []byte("/hot")
	h := Hash(k)
	miss := []byte("/cold")
	mh := Hash(miss)
	if n := testing.AllocsPerRun(1000, func() {
		if _, st := z.Get(k, h, t0); st != Hit {
			panic("miss")
		}
	}); n != 0 {
		t.Fatalf("Get hit allocates %v", n)
	}
	if n := testing.AllocsPerRun(1000, func() { z.Get(miss, mh, t0) }); n != 0 {
		t.Fatalf("Get miss allocates %v", n)
	}
	names := NormalizeVary(nil, [][]byte{[]byte("Accept-Encoding")})
	var req RequestHeaders = fakeReq{{"Accept-Encoding", "gzip"}}.bytes() // boxed once, like a *http1.Request
	put(t, z, NewEntry(EntrySpec{Key: []byte("V"), StoredAt: t0, Decision: Decision{Cacheable: true, TTL: time.Hour},
		VaryNames: names, Variant: AppendVariant(nil, names, req)}))
	vk, vh := []byte("V"), Hash([]byte("V"))
	scratch := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(1000, func() {
		var st Status
		if _, st, scratch = z.Lookup(vk, vh, req, scratch, t0); st != Hit {
			panic(st.String())
		}
	}); n != 0 {
		t.Fatalf("Lookup of a variant allocates %v", n)
	}
	if n := testing.AllocsPerRun(1000, func() { z.CountUse(h, 2) }); n != 0 {
		t.Fatalf("CountUse allocates %v", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	z := newTestZone(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				k := fmt.Sprintf("/k/%d", i%50)
				switch i % 10 {
				case 0:
					z.Set(entry(k, k, t0, time.Minute))
				case 1:
					z.Purge([]byte(k))
				case 2:
					if g == 0 && i%500 == 2 {
						z.PurgePrefix([]byte("/k/1"))
					}
				default:
					if e, st := get(z, k, t0); st == Hit && string(e.Body()) != k {
						t.Errorf("wrong body for %s", k)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	z.c.Wait()
	s := z.Stats()
	n := 0
	z.c.IterValues(func(*Entry) bool { n++; return false })
	if int64(n) != s.Entries {
		t.Fatalf("ristretto holds %d, index %d", n, s.Entries)
	}
}

func BenchmarkGetHit(b *testing.B) {
	z := newTestZone(b, "keys_zone=b:16m")
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("http://example.com/static/asset-%d.js", i))
		put(b, z, entry(string(keys[i]), "body", t0, time.Hour))
	}
	hashes := make([]uint64, len(keys))
	for i := range keys {
		hashes[i] = Hash(keys[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			z.Get(keys[i&1023], hashes[i&1023], t0)
			i++
		}
	})
}

func BenchmarkGetHitHashed(b *testing.B) {
	z := newTestZone(b)
	k := []byte("http://example.com/static/app.js")
	put(b, z, entry(string(k), "body", t0, time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		z.Get(k, Hash(k), t0)
	}
}

func BenchmarkGetMiss(b *testing.B) {
	z := newTestZone(b)
	k := []byte("http://example.com/missing")
	h := Hash(k)
	b.ReportAllocs()
	for b.Loop() {
		z.Get(k, h, t0)
	}
}

func BenchmarkLookupVariant(b *testing.B) {
	z := newTestZone(b)
	names := NormalizeVary(nil, [][]byte{[]byte("Accept-Encoding")})
	var req RequestHeaders = fakeReq{{"Host", "example.com"}, {"Accept-Encoding", "gzip, br"}}.bytes()
	put(b, z, NewEntry(EntrySpec{Key: []byte("K"), Body: []byte("x"), StoredAt: t0,
		Decision: Decision{Cacheable: true, TTL: time.Hour}, VaryNames: names, Variant: AppendVariant(nil, names, req)}))
	k := []byte("K")
	h := Hash(k)
	scratch := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var st Status
		_, st, scratch = z.Lookup(k, h, req, scratch, t0)
		if st != Hit {
			b.Fatal(st)
		}
	}
}

// BenchmarkSet measures NewEntry + Set of a new 1 KiB response, as on a
// cacheable upstream miss.
func BenchmarkSet(b *testing.B) {
	z := newTestZone(b, "keys_zone=b:16m")
	body := make([]byte, 1024)
	head := []byte("Content-Type: text/html\r\nETag: \"abc\"\r\n")
	key := make([]byte, 0, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key = fmt.Appendf(key[:0], "http://example.com/page/%d", i)
		z.Set(NewEntry(EntrySpec{Key: key, Status: 200, Head: head, Body: body, StoredAt: t0,
			Decision: Decision{Cacheable: true, TTL: time.Hour}}))
		i++
	}
}

func BenchmarkEvaluate(b *testing.B) {
	h := hdrs("Cache-Control: public, max-age=3600, stale-while-revalidate=60", "Vary: Accept-Encoding", "ETag: \"x\"")
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(200, &h, nil, 0, t0)
	}
}

// A 304 to a revalidation refreshes the entry: same response, new
// lifetime, and the zone serves the refreshed copy as a hit.
func TestRefreshKeepsResponse(t *testing.T) {
	z := newTestZone(t)
	old := entry("k", "body", t0, time.Second)
	put(t, z, old)
	later := t0.Add(5 * time.Second)
	e, st := get(z, "k", later)
	if st != Expired || e != old {
		t.Fatalf("%v", st)
	}
	n := e.Refresh(later, Decision{Cacheable: true, TTL: time.Minute})
	if string(n.Body()) != "body" || string(n.ETag()) != `"v1"` || n.Status() != 200 || !bytes.Equal(n.Key(), old.Key()) ||
		!n.Fresh(later.Add(59*time.Second)) || n.Fresh(later.Add(time.Minute)) || n.Age(later) != 0 || n.Size() != old.Size() {
		t.Fatalf("refreshed entry wrong: %+v", n)
	}
	put(t, z, n)
	if e, st := get(z, "k", later.Add(time.Second)); st != Hit || e != n {
		t.Fatalf("after refresh: %v", st)
	}
	if s := z.Stats(); s.Entries != 1 || s.Bytes != old.Size() {
		t.Fatalf("%+v", s)
	}
}

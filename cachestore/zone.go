package cachestore

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
)

// hashFn is xxhash.Sum64; collision tests replace it.
var hashFn = xxhash.Sum64

// Hash is the hash Get, Lock and CountUse expect for a key: xxhash.Sum64.
// Any goroutine may call it.
func Hash(key []byte) uint64 { return hashFn(key) }

// Zone is one keys_zone: an in-memory response cache on ristretto (TinyLFU
// admission, sampled-LFU eviction within MaxBytes) plus nginx's inactive=
// expiry, proxy_cache_lock and proxy_cache_min_uses.
//
// Every method may be called from any goroutine, including gnet event
// loops: Get, Lookup and CountUse take no lock and (on a hit) allocate
// nothing; Set, Purge and PurgePrefix take the zone's write mutex and never
// block on I/O. Close is the exception (see Close). The zero value is not
// usable; use NewZone.
//
// Why a key index next to ristretto: ristretto is keyed by the 64-bit hash
// only (a uint64 key disables its conflict check), so each Entry carries its
// full key and Get compares it: a hash collision is a Miss, never another
// client's response. The index (hash → entry, under idxMu, updated from
// ristretto's OnExit) gives PurgePrefix and the inactive sweep their
// entries (O(entries), like nginx's cache manager walking its queue) and
// Stats its entry and byte counts.
type Zone struct {
	spec      ZoneSpec
	c         *ristretto.Cache[uint64, *Entry]
	inactive  int64 // ns
	minCharge int64 // smallest ristretto cost of an entry, see NewZone

	setMu sync.Mutex // serialises Set/Purge/sweep, so the index stays exact
	idxMu sync.Mutex // guards idx; taken by ristretto's OnExit too
	idx   map[uint64]*Entry

	entries, bytes atomic.Int64
	ctr            [16]counterStripe
	resp           [16]respStripe // responses by $upstream_cache_status (stats.go)

	locks lockTable
	uses  *UseCounter

	closed atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

// counterStripe spreads the hit/miss counters over cache lines so that
// event loops on different cores do not contend on one atomic.
type counterStripe struct {
	hits, misses, expired atomic.Uint64
	_                     [40]byte
}

// NewZone creates the zone and starts its cache manager goroutine (the
// inactive sweep). Any goroutine may call it.
func NewZone(spec ZoneSpec) (*Zone, error) {
	if spec.Name == "" || spec.KeysZoneSize <= 0 {
		return nil, errors.New(`"proxy_cache_path" must have "keys_zone" parameter`)
	}
	if spec.MaxBytes <= 0 {
		spec.MaxBytes = min(spec.KeysZoneSize*DefaultMaxBytesFactor, DefaultMemoryCap)
	}
	if spec.Inactive <= 0 {
		spec.Inactive = DefaultInactive
	}
	maxEntries := spec.MaxEntries()
	// TinyLFU wants ~10 counters per entry; they cost ~4.4 B each up front
	// (10M ≈ 44 MiB), so the keys_zone size, not max_size, sizes them.
	counters := min(max(10*maxEntries, 1024), 10_000_000)
	z := &Zone{
		spec:     spec,
		inactive: int64(spec.Inactive),
		// Every entry costs at least MaxBytes/maxEntries, so the zone holds
		// at most about maxEntries entries, as nginx's keys_zone limits the
		// number of nodes.
		minCharge: max(1, spec.MaxBytes/maxEntries),
		idx:       make(map[uint64]*Entry),
		uses:      NewUseCounter(int(min(maxEntries, 1<<22))),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	z.locks.init()
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *Entry]{
		NumCounters:        counters,
		MaxCost:            spec.MaxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true, // entryOverhead already counts it
		KeyToHash:          func(k uint64) (uint64, uint64) { return k, 0 },
		OnExit:             z.onExit,
	})
	if err != nil {
		return nil, err
	}
	z.c = c
	go z.manager()
	return z, nil
}

// Spec returns the zone's configuration.
func (z *Zone) Spec() ZoneSpec { return z.spec }

// Name is the keys_zone name.
func (z *Zone) Name() string { return z.spec.Name }

// Close stops the cache manager and frees the cache. Call it once, after
// the last Get/Set/Lock on the zone has returned (e.g. when a reload has
// drained the old configuration): ristretto's Close is not safe against
// concurrent use. Later calls return Miss/false.
func (z *Zone) Close() {
	z.setMu.Lock()
	defer z.setMu.Unlock()
	if z.closed.Swap(true) {
		return
	}
	close(z.stop)
	<-z.done
	z.c.Close()
	z.idxMu.Lock()
	clear(z.idx)
	z.entries.Store(0)
	z.bytes.Store(0)
	z.idxMu.Unlock()
}

// Get looks key up. hash must be Hash(key). now is the caller's clock (the
// pipeline's cached time). It returns (nil, Miss), (e, Hit), (e, Expired)
// or, for a key whose responses vary, (marker, Vary) — Lookup resolves that.
// An entry not hit for the zone's inactive time is a Miss even before the
// cache manager removes it (nginx: fcn->expire). Get allocates nothing and
// takes no lock (ristretto's sharded map read lock aside).
func (z *Zone) Get(key []byte, hash uint64, now time.Time) (*Entry, Status) {
	st := &z.ctr[hash&15]
	if z.closed.Load() {
		st.misses.Add(1)
		return nil, Miss
	}
	e, ok := z.c.Get(hash)
	// The full key comparison is what makes a 64-bit collision a miss.
	if !ok || e == nil || e.dead.Load() || !bytes.Equal(e.key, key) {
		st.misses.Add(1)
		return nil, Miss
	}
	n := now.UnixNano()
	last := e.lastAccess.Load()
	if n-last >= z.inactive {
		st.misses.Add(1)
		return nil, Miss
	}
	if n-last >= int64(time.Second) {
		// nginx refreshes fcn->expire on every hit; a store at most once a
		// second keeps the cache line shared between cores.
		e.lastAccess.Store(n)
	}
	if e.marker {
		return e, Vary
	}
	if n < e.validUntil {
		st.hits.Add(1)
		return e, Hit
	}
	st.expired.Add(1)
	return e, Expired
}

// Lookup is Get that resolves variants: when key's responses vary, it
// builds the variant key into scratch (reused when large enough, returned
// for the next call) from req's header values and looks that up.
// It allocates nothing once scratch is large enough.
func (z *Zone) Lookup(key []byte, hash uint64, req RequestHeaders, scratch []byte, now time.Time) (*Entry, Status, []byte) {
	e, st := z.Get(key, hash, now)
	if st != Vary {
		return e, st, scratch
	}
	scratch = append(scratch[:0], key...)
	scratch = append(scratch, 0)
	scratch = AppendVariant(scratch, e.varyNames, req)
	e, st = z.Get(scratch, Hash(scratch), now)
	return e, st, scratch
}

// Set stores e, best-effort: ristretto may drop the write under contention
// or its TinyLFU policy may refuse a key seen too rarely, and an entry
// larger than MaxBytes is refused outright. A false result means it was
// certainly not stored; true means it was handed to ristretto (which
// applies it asynchronously, so a Get right after Set may still miss). An
// existing entry under the same key is replaced. For a variant, the Vary
// marker under the primary key is stored too (or kept when unchanged).
func (z *Zone) Set(e *Entry) bool {
	if e == nil || e.marker || e.size > z.spec.MaxBytes {
		return false
	}
	z.setMu.Lock()
	defer z.setMu.Unlock()
	if z.closed.Load() {
		return false
	}
	if m := e.marker2; m != nil {
		z.idxMu.Lock()
		cur := z.idx[m.hash]
		z.idxMu.Unlock()
		if cur == nil || !cur.marker || !bytes.Equal(cur.key, m.key) || !bytes.Equal(cur.varyNames, m.varyNames) {
			if !z.store(m) {
				return false
			}
		}
	}
	return z.store(e)
}

// store runs under setMu. Order matters: the index learns e before
// ristretto does, so that ristretto's OnExit for a rejected e finds it; an
// existing entry is deleted from ristretto first, so the new one is a new
// item that goes through admission and eviction (ristretto's in-place
// update path does not evict and would let MaxBytes be exceeded).
func (z *Zone) store(e *Entry) bool {
	h := e.hash
	z.idxMu.Lock()
	old := z.idx[h]
	if old == e {
		z.idxMu.Unlock()
		return true
	}
	z.idx[h] = e
	if old != nil {
		old.dead.Store(true)
		z.bytes.Add(e.size - old.size)
	} else {
		z.entries.Add(1)
		z.bytes.Add(e.size)
	}
	z.idxMu.Unlock()
	if old != nil {
		z.c.Del(h)
	}
	if !z.c.Set(h, e, max(e.size, z.minCharge)) {
		z.unindex(e)
		return false
	}
	return true
}

// unindex removes e from the index if it is still the indexed entry.
func (z *Zone) unindex(e *Entry) bool {
	z.idxMu.Lock()
	defer z.idxMu.Unlock()
	if z.idx[e.hash] != e {
		return false
	}
	delete(z.idx, e.hash)
	z.entries.Add(-1)
	z.bytes.Add(-e.size)
	return true
}

// onExit is ristretto's OnExit: an entry was evicted, rejected, replaced or
// deleted. It runs on ristretto's goroutine or inside Set/Del.
func (z *Zone) onExit(e *Entry) {
	if e != nil {
		z.unindex(e)
	}
}

// Purge removes key's entry (and, if key's responses vary, every variant)
// and reports whether there was one. A purged entry is never returned
// again, even by a Get racing with Purge on another core once Purge has
// returned.
func (z *Zone) Purge(key []byte) bool {
	h := Hash(key)
	z.setMu.Lock()
	defer z.setMu.Unlock()
	if z.closed.Load() {
		return false
	}
	z.idxMu.Lock()
	e := z.idx[h]
	if e == nil || !bytes.Equal(e.key, key) {
		z.idxMu.Unlock()
		return false
	}
	delete(z.idx, h)
	z.entries.Add(-1)
	z.bytes.Add(-e.size)
	e.dead.Store(true)
	z.idxMu.Unlock()
	z.c.Del(h)
	if e.marker {
		pfx := make([]byte, len(key)+1)
		copy(pfx, key)
		z.purgePrefix(pfx, 0)
	}
	return true
}

// PurgePrefix removes every entry whose key starts with prefix (beyond
// nginx OSS: for a PURGE method with a trailing "*", like nginx Plus's
// proxy_cache_purge). It walks the zone's index, O(entries), holding the
// zone's write mutex (Sets wait meanwhile); entries are marked dead before
// the mutex is released, so no later Get returns them. Returns how many
// entries were removed.
func (z *Zone) PurgePrefix(prefix []byte) int {
	z.setMu.Lock()
	defer z.setMu.Unlock()
	if z.closed.Load() {
		return 0
	}
	return z.purgePrefix(prefix, 0)
}

// purgePrefix runs under setMu. With inactiveBefore != 0 it instead
// removes entries last hit at or before that time (the manager's sweep).
func (z *Zone) purgePrefix(prefix []byte, inactiveBefore int64) int {
	var victims []uint64
	z.idxMu.Lock()
	for h, e := range z.idx {
		if inactiveBefore != 0 {
			if e.lastAccess.Load() > inactiveBefore {
				continue
			}
		} else if !bytes.HasPrefix(e.key, prefix) {
			continue
		}
		delete(z.idx, h)
		z.entries.Add(-1)
		z.bytes.Add(-e.size)
		e.dead.Store(true)
		victims = append(victims, h)
	}
	z.idxMu.Unlock()
	for _, h := range victims {
		z.c.Del(h)
	}
	return len(victims)
}

// expire removes the entries not hit since now - inactive, like
// ngx_http_file_cache_expire. Returns how many.
func (z *Zone) expire(now time.Time) int {
	z.setMu.Lock()
	defer z.setMu.Unlock()
	if z.closed.Load() {
		return 0
	}
	return z.purgePrefix(nil, now.UnixNano()-z.inactive)
}

// manager is the zone's cache manager: it expires inactive entries every
// inactive/10, between 1 s and 10 s (nginx's manager wakes at most every
// 10 s too).
func (z *Zone) manager() {
	defer close(z.done)
	every := min(max(z.spec.Inactive/10, time.Second), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-z.stop:
			return
		case now := <-t.C:
			z.expire(now)
		}
	}
}

// Stats is a snapshot of a zone's counters.
type Stats struct {
	Hits, Misses, Expired uint64 // Get results (Vary markers not counted)
	Entries               int64  // entries indexed (stored or being admitted)
	Bytes                 int64  // their accounted size (Entry.Size)
	MaxBytes              int64
}

// Stats reads the counters without locking; any goroutine may call it.
func (z *Zone) Stats() Stats {
	s := Stats{Entries: z.entries.Load(), Bytes: z.bytes.Load(), MaxBytes: z.spec.MaxBytes}
	for i := range z.ctr {
		s.Hits += z.ctr[i].hits.Load()
		s.Misses += z.ctr[i].misses.Load()
		s.Expired += z.ctr[i].expired.Load()
	}
	return s
}

// CountUse records one request for key (by its hash) and reports whether
// it has now been requested at least minUses times (proxy_cache_min_uses;
// nginx counts fcn->uses in ngx_http_file_cache_exists). minUses <= 1 is
// always true and records nothing.
func (z *Zone) CountUse(hash uint64, minUses int) bool {
	if minUses <= 1 {
		return true
	}
	return z.uses.Touch(hash) >= uint32(minUses)
}

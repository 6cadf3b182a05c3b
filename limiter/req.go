package limiter

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

const (
	// MaxReqKeyLen is the longest key a ReqZone records. nginx logs
	// "the value of the ... key is more than 65535 bytes" and skips the limit
	// for longer keys; Decide returns Declined so the caller can do the same.
	MaxReqKeyLen = 65535

	// NoDelay is the delay argument for "limit_req ... nodelay": nginx sets
	// delay to NGX_MAX_INT_T_VALUE / 1000 so delay*1000 cannot overflow.
	NoDelay int64 = math.MaxInt64 / 1000

	// reqHdr is the node header in words: hash, meta (low 32 bits: pins held
	// by Lookup, nginx's lr->count), excess, last, LRU links.
	reqHdr  = 5
	wExcess = 2
	wLast   = 3
	wLRU    = 4

	// minShardBytes keeps shards large enough that one hot shard filling up
	// early (the price of per-shard LRUs) stays statistically negligible.
	minShardBytes = 64 << 10
	maxShards     = 64
	cacheLine     = 128 // two lines: adjacent-line prefetch shares pairs
)

// shardCount depends on the size only, so capacity does not change with
// GOMAXPROCS: 1 shard below 128 KiB, up to 64 shards from 4 MiB.
func shardCount(size int64) int {
	n := 1
	for n < maxShards && size/int64(n*2) >= minShardBytes {
		n *= 2
	}
	return n
}

type reqShard struct {
	mu      sync.Mutex
	t       table
	lruHead uint32 // off+1 of the most recently used node; 0 = empty
	lruTail uint32 // off+1 of the least recently used node
}

type paddedReqShard struct {
	reqShard
	_ [(cacheLine - unsafe.Sizeof(reqShard{})%cacheLine) % cacheLine]byte
}

// ReqZone is a limit_req_zone: per-key leaky buckets in a bounded store.
//
// The zero value is not usable; create zones with NewReqZone. All methods are
// safe for concurrent use by any number of goroutines (event loops); each key
// hashes to one of up to 64 shards with its own mutex.
//
// Time is passed in by the caller as now, in milliseconds from a monotonic
// clock, the way nginx reads ngx_current_msec (the event loop's cached time)
// rather than the wall clock. Tests therefore need no fake clock object: they
// pass the times they want.
type ReqZone struct {
	obs    atomic.Pointer[observerBox] // fleet-wide sync, if any
	name   string
	rate   int64 // milli-requests per second (nginx ctx->rate)
	shift  uint  // shard = hash >> shift
	shards []paddedReqShard
	hash   func([]byte) uint64 // xxhash.Sum64; replaced by collision tests
	stats  reqCounters         // decisions, for metrics (see Stats)
}

// NewReqZone creates the zone of "limit_req_zone KEY zone=name:size rate=R".
// ratePerSecMilli is nginx's ctx->rate: requests per second times 1000, so
// "5r/s" is 5000 and "30r/m" is 30*1000/60 = 500 (see ParseRate). size bounds
// the zone's memory: see Capacity for how many keys fit. It panics if
// ratePerSecMilli <= 0, which nginx rejects at configuration time.
func NewReqZone(name string, size int64, ratePerSecMilli int64) *ReqZone {
	return newReqZone(name, size, ratePerSecMilli, shardCount(size))
}

func newReqZone(name string, size, rate int64, shards int) *ReqZone {
	if rate <= 0 {
		panic("limiter: NewReqZone: rate must be positive")
	}
	z := &ReqZone{
		name:   name,
		rate:   rate,
		shards: make([]paddedReqShard, shards),
		hash:   xxhash.Sum64,
	}
	bits := 0
	for 1<<bits < shards {
		bits++
	}
	z.shift = uint(64 - bits)
	for i := range z.shards {
		z.shards[i].t = newTable(size/int64(shards), reqHdr)
	}
	return z
}

// Name returns the zone name given to NewReqZone.
func (z *ReqZone) Name() string { return z.name }

var monoStart = time.Now()

// NowMillis is the monotonic clock in milliseconds that callers pass to the
// zones as now (one process-wide base, so that the event loops and the
// fleet sync agree).
func NowMillis() int64 { return int64(time.Since(monoStart) / time.Millisecond) }

// Observer learns of every request a zone accepts (passed or delayed), for
// fleet-wide limits. Accepted is called on the request's goroutine (an
// event loop) with the key borrowed for the call: it must not block nor
// retain key.
type Observer interface {
	Accepted(key []byte)
}

type observerBox struct{ o Observer }

// SetObserver sets (or with nil clears) the zone's observer. Any goroutine.
func (z *ReqZone) SetObserver(o Observer) {
	if o == nil {
		z.obs.Store(nil)
		return
	}
	z.obs.Store(&observerBox{o})
}

// Charge adds n requests accepted elsewhere (other nodes of a fleet) to
// key's bucket at time now, as if they had been accepted here: the excess
// leaks to now, then grows by n. A new key gets a node (or nothing, when
// the zone is full of pinned nodes). Charge never rejects anything itself;
// the next Decide sees the fuller bucket. Safe for concurrent use.
func (z *ReqZone) Charge(key []byte, now, n int64) {
	if n <= 0 || len(key) == 0 || len(key) > MaxReqKeyLen {
		return
	}
	h := z.hash(key)
	s := &z.shards[uint32(h>>z.shift)].reqShard
	s.mu.Lock()
	defer s.mu.Unlock()
	off, pos, found := s.t.find(key, h)
	if !found {
		removed := s.expire(z.rate, now, 1)
		var ok bool
		if off, ok = s.t.alloc(s.t.nodeWords(len(key))); !ok {
			return
		}
		if removed != 0 {
			pos = s.t.emptySlot(h)
		}
		s.t.link(off, key, h, pos)
		a := s.t.arena[off : off+reqHdr : off+reqHdr]
		a[wExcess], a[wLRU], a[wLast] = 0, 0, uint64(now)
		s.pushHead(off)
	} else {
		s.touch(off)
	}
	a := s.t.arena[off : off+reqHdr : off+reqHdr]
	ms := elapsed(now, int64(a[wLast]))
	excess := leak(int64(a[wExcess]), z.rate, ms)
	if excess < 0 {
		excess = 0
	}
	excess += milli(n)
	if excess < 0 { // saturated
		excess = math.MaxInt64 / 2
	}
	a[wExcess] = uint64(excess)
	if ms != 0 {
		a[wLast] = uint64(now)
	}
}

// Rate returns the rate in milli-requests per second.
func (z *ReqZone) Rate() int64 { return z.rate }

// Capacity returns how many distinct keys of keyLen bytes the zone holds
// before it must evict. A node costs a 40-byte header plus the key rounded up
// to 8 bytes, rounded up to a slab size class, plus its share of the hash
// index: for $binary_remote_addr that is 48 bytes (IPv4) or 56 bytes (IPv6)
// plus ~11 bytes of index, i.e. about 17,700 IPv4 or 15,200 IPv6 keys per
// MiB (nginx on 64-bit: 128 bytes per state, about 8,000 per MiB).
func (z *ReqZone) Capacity(keyLen int) int {
	return len(z.shards) * z.shards[0].t.capacity(keyLen)
}

// Bytes returns the memory the zone reserved, which is at most the size given
// to NewReqZone (plus shard headers) unless the size was below one page per shard.
func (z *ReqZone) Bytes() int64 {
	var n int64
	for i := range z.shards {
		n += z.shards[i].t.bytes()
	}
	return n
}

// Len returns the number of keys currently stored. It locks every shard in
// turn, so it is meant for tests and status pages, not the request path.
func (z *ReqZone) Len() int {
	n := 0
	for i := range z.shards {
		s := &z.shards[i]
		s.mu.Lock()
		n += s.t.live
		s.mu.Unlock()
	}
	return n
}

// DelayMs is nginx's delay for an accepted request, computed in
// ngx_http_limit_req_account: 0 if excess <= delay*1000, else
// (excess - delay*1000) * 1000 / rate milliseconds. delay is the "delay=N"
// parameter; 0 when neither delay= nor nodelay is given; NoDelay for nodelay.
func (z *ReqZone) DelayMs(excess, delay int64) int64 {
	d := milli(delay)
	if excess <= d {
		return 0
	}
	return (excess - d) * 1000 / z.rate
}

// Decide makes the decision for a zone that is the only (or last) limit_req
// of a location: ngx_http_limit_req_lookup with account=1. key is borrowed
// only for the call. burst and delay are the directive's burst= and delay=
// values in requests (delay = NoDelay for nodelay).
//
// It returns Passed or Delayed with the new excess (milli-requests; the
// caller derives the pause with DelayMs), Busy with the excess the request
// would have caused, NoMemory, or Declined for an empty or over-long key.
//
// Dry run ("limit_req_dry_run on") uses the same call: nginx still runs the
// lookup, so an accepted request is accounted exactly as without dry run and a
// rejected one changes nothing either way; only the reaction differs, which
// ReqDecision / the caller handles.
func (z *ReqZone) Decide(key []byte, now, burst, delay int64) (Result, int64) {
	r, excess, _, _ := z.lookup(key, now, burst, true)
	if r == Passed && excess > milli(delay) {
		r = Delayed
	}
	return r, excess
}

// Lookup is the first phase of a zone that is followed by other limit_req
// directives in the same location (ngx_http_limit_req_lookup with
// account=0): it checks the burst but records nothing yet; on success the
// node is pinned (nginx lr->count++) so the zone cannot evict it, and the
// returned Hold must be finished with exactly one Commit (all later zones
// accepted; nginx ngx_http_limit_req_account) or Release (a later zone
// rejected; nginx ngx_http_limit_req_unlock, which only drops the pin, so the
// earlier zones' buckets are left as if the request never came).
//
// Result is Held, Busy, NoMemory or Declined; the Hold is usable only with
// Held. A new key's node is created with last = 0, as nginx does, so its
// first Commit drains to excess 0.
func (z *ReqZone) Lookup(key []byte, now, burst int64) (Result, int64, Hold) {
	r, excess, si, off := z.lookup(key, now, burst, false)
	if r != Held {
		return r, excess, Hold{}
	}
	return r, excess, Hold{z: z, shard: si, off: off}
}

// Hold is a pinned, not yet accounted node from ReqZone.Lookup. The zero Hold
// holds nothing and its methods are no-ops. A Hold belongs to the goroutine
// handling the request; it may be finished from any goroutine, but not from
// two at once.
type Hold struct {
	z     *ReqZone
	shard uint32
	off   uint32
}

// Commit accounts the held request at time now (ngx_http_limit_req_account:
// the excess is recomputed from the node's current state, not the one seen
// at Lookup, and the burst is not checked again) and unpins the node. It
// returns the committed excess; feed it to DelayMs with the zone's delay. h
// becomes the zero Hold.
func (h *Hold) Commit(now int64) int64 {
	if h.z == nil {
		return 0
	}
	z := h.z
	s := &z.shards[h.shard].reqShard
	s.mu.Lock()
	a := s.t.arena[h.off : h.off+reqHdr : h.off+reqHdr]
	ms := elapsed(now, int64(a[wLast]))
	excess := leak(int64(a[wExcess]), z.rate, ms) + 1000
	if excess < 0 {
		excess = 0
	}
	if ms != 0 {
		a[wLast] = uint64(now)
	}
	a[wExcess] = uint64(excess)
	a[1]-- // pins live in the low 32 bits of meta and are > 0 here
	s.mu.Unlock()
	*h = Hold{}
	return excess
}

// Release unpins the node without accounting (ngx_http_limit_req_unlock).
// h becomes the zero Hold.
func (h *Hold) Release() {
	if h.z == nil {
		return
	}
	s := &h.z.shards[h.shard].reqShard
	s.mu.Lock()
	s.t.arena[h.off+1]--
	s.mu.Unlock()
	*h = Hold{}
}

// Zone returns the zone the hold belongs to, nil for the zero Hold.
func (h *Hold) Zone() *ReqZone { return h.z }

// milli converts a burst or delay in requests to nginx's milli units,
// saturating where nginx's own parsing would have refused the value.
func milli(n int64) int64 {
	if n > math.MaxInt64/1000 {
		return math.MaxInt64
	}
	return n * 1000
}

// elapsed is nginx's "ms = now - lr->last" with its clock quirks: a jump back
// of more than 60 s counts as 1 ms, a smaller one as 0.
func elapsed(now, last int64) int64 {
	ms := now - last
	if ms < -60000 {
		return 1
	}
	if ms < 0 {
		return 0
	}
	return ms
}

// leak is "excess - rate * ms / 1000" with the product saturated: nginx
// computes it in machine words, where the overflow is only reachable with a
// bogus clock, and any saturated result is far below zero anyway.
func leak(excess, rate, ms int64) int64 {
	if ms > 0 && rate > math.MaxInt64/ms {
		return math.MinInt64 / 2
	}
	return excess - rate*ms/1000
}

// lookup is ngx_http_limit_req_lookup. With account it returns Passed (never
// Delayed; Decide classifies) and updates the node; without it returns Held
// and pins the node.
func (z *ReqZone) lookup(key []byte, now, burst int64, account bool) (Result, int64, uint32, uint32) {
	if len(key) == 0 || len(key) > MaxReqKeyLen {
		return Declined, 0, 0, 0
	}
	h := z.hash(key)
	si := uint32(h >> z.shift)
	s := &z.shards[si].reqShard
	s.mu.Lock()
	off, pos, found := s.t.find(key, h)
	if found {
		s.touch(off)
		a := s.t.arena[off : off+reqHdr : off+reqHdr]
		ms := elapsed(now, int64(a[wLast]))
		excess := leak(int64(a[wExcess]), z.rate, ms) + 1000
		if excess < 0 {
			excess = 0
		}
		if excess > milli(burst) {
			s.mu.Unlock()
			return Busy, excess, 0, 0
		}
		if account {
			a[wExcess] = uint64(excess)
			if ms != 0 {
				a[wLast] = uint64(now)
			}
			s.mu.Unlock()
			return Passed, excess, 0, 0
		}
		a[1]++
		s.mu.Unlock()
		return Held, excess, si, off
	}

	// A new key. nginx first reclaims up to two idle, drained LRU nodes, and
	// only if the slab is still full evicts the LRU node by force (plus up to
	// two more idle ones) before giving up.
	removed := s.expire(z.rate, now, 1)
	off, ok := s.t.alloc(s.t.nodeWords(len(key)))
	if !ok {
		removed += s.expire(z.rate, now, 0)
		if off, ok = s.t.alloc(s.t.nodeWords(len(key))); !ok {
			s.mu.Unlock()
			return NoMemory, 0, 0, 0
		}
	}
	if removed != 0 {
		pos = s.t.emptySlot(h) // removals shift the index
	}
	s.t.link(off, key, h, pos)
	a := s.t.arena[off : off+reqHdr : off+reqHdr]
	a[wExcess] = 0
	a[wLRU] = 0
	s.pushHead(off)
	if account {
		a[wLast] = uint64(now)
		s.mu.Unlock()
		return Passed, 0, 0, 0
	}
	a[wLast] = 0
	a[1]++
	s.mu.Unlock()
	return Held, 0, si, off
}

// expire is ngx_http_limit_req_expire. n == 1 deletes up to two LRU nodes that
// have been idle for 60 s and whose excess has drained; n == 0 first deletes
// the LRU node by force. A pinned LRU node stops it: nodes are bumped on
// lookup, so nothing older exists. It returns the number of nodes deleted.
func (s *reqShard) expire(rate, now int64, n int) int {
	removed := 0
	for n < 3 {
		if s.lruTail == 0 {
			break
		}
		off := s.lruTail - 1
		a := s.t.arena[off : off+reqHdr : off+reqHdr]
		if uint32(a[1]) != 0 {
			break
		}
		check := n != 0
		n++
		if check {
			ms := now - int64(a[wLast])
			if ms < 0 {
				ms = -ms
			}
			if ms < 60000 {
				break
			}
			if leak(int64(a[wExcess]), rate, ms) > 0 {
				break
			}
		}
		s.unlink(off)
		s.t.remove(off)
		removed++
	}
	return removed
}

func lruPrev(v uint64) uint32 { return uint32(v) }
func lruNext(v uint64) uint32 { return uint32(v >> 32) }

func (s *reqShard) setPrev(off, prev uint32) {
	p := &s.t.arena[off+wLRU]
	*p = *p&^math.MaxUint32 | uint64(prev)
}

func (s *reqShard) setNext(off, next uint32) {
	p := &s.t.arena[off+wLRU]
	*p = *p&math.MaxUint32 | uint64(next)<<32
}

func (s *reqShard) pushHead(off uint32) {
	s.t.arena[off+wLRU] = uint64(s.lruHead) << 32 // prev = none, next = old head
	if s.lruHead != 0 {
		s.setPrev(s.lruHead-1, off+1)
	} else {
		s.lruTail = off + 1
	}
	s.lruHead = off + 1
}

func (s *reqShard) unlink(off uint32) {
	v := s.t.arena[off+wLRU]
	prev, next := lruPrev(v), lruNext(v)
	if prev != 0 {
		s.setNext(prev-1, next)
	} else {
		s.lruHead = next
	}
	if next != 0 {
		s.setPrev(next-1, prev)
	} else {
		s.lruTail = prev
	}
}

// touch moves a node to the LRU head (ngx_queue_remove + insert_head).
func (s *reqShard) touch(off uint32) {
	if s.lruHead == off+1 {
		return
	}
	s.unlink(off)
	s.pushHead(off)
}

// ReqLimit is one "limit_req zone=NAME [burst=N] [nodelay | delay=N]" directive.
// Its zero value has no zone and must not be used.
type ReqLimit struct {
	Zone  *ReqZone
	Burst int64 // burst=, requests; 0 if absent
	Delay int64 // delay=, requests; 0 if absent; NoDelay for nodelay
}

// ReqDecision is the outcome of CheckReq for one request. The zero value is
// "no limit applied" (every key was empty).
type ReqDecision struct {
	// Status is the request's $limit_req_status.
	Status ReqStatus
	// DelayMs is how long to hold the request before processing it, non-zero
	// only with Status == ReqDelayed.
	DelayMs int64
	// Excess (milli-requests) and Zone identify the zone that rejected or that
	// imposed the longest delay, for nginx's log lines "limiting requests,
	// excess: %ui.%03ui by zone %V" and "delaying request, ...".
	Excess int64
	Zone   *ReqZone
	// NoMemory reports that the rejection was "could not allocate node"
	// (log at alert level) rather than the burst being exceeded.
	NoMemory bool
}

// ErrInvalidRate is returned by ParseRate.
var ErrInvalidRate = errors.New("invalid rate")

// maxHolds is how many pinned zones CheckReq tracks without allocating; more
// limit_req directives than this in one location still work but allocate.
const maxHolds = 8

// CheckReq runs the limit_req directives of one location for one request,
// as ngx_http_limit_req_handler does: keys[i] is the evaluated key of
// limits[i] (borrowed for the call). Zones before the last are looked up
// without accounting and pinned; the first rejection releases them, so a
// request rejected by a later zone costs the earlier zones nothing; if all
// accept, the earlier zones are accounted and the longest delay wins.
//
// With dryRun ("limit_req_dry_run on") the buckets evolve exactly as without
// it, but the status becomes *_DRY_RUN and DelayMs is 0: the caller neither
// rejects nor delays. The caller applies the result code (limit_req_status,
// default 503) on ReqRejected and runs CheckReq once per main request (nginx
// skips it when r->main->limit_req_status is already set).
//
// Safe for concurrent use; allocation-free for up to 8 limits.
func CheckReq(limits []ReqLimit, keys [][]byte, now int64, dryRun bool) ReqDecision {
	var buf [maxHolds]heldLimit
	held := buf[:0]
	var (
		rc     = Declined
		excess int64
		limit  *ReqLimit
	)
	for i := range limits {
		limit = &limits[i]
		key := keys[i]
		if len(key) == 0 || len(key) > MaxReqKeyLen {
			continue
		}
		var h Hold
		if i == len(limits)-1 {
			rc, excess = limit.Zone.Decide(key, now, limit.Burst, NoDelay)
		} else {
			rc, excess, h = limit.Zone.Lookup(key, now, limit.Burst)
		}
		if rc == Held {
			held = append(held, heldLimit{h, limit})
			continue
		}
		break
	}

	if rc == Declined {
		return ReqDecision{}
	}
	if rc == Busy || rc == NoMemory {
		for i := range held {
			held[i].h.Release()
		}
		d := ReqDecision{Status: ReqRejected, Excess: excess, Zone: limit.Zone, NoMemory: rc == NoMemory}
		if dryRun {
			d.Status = ReqRejectedDryRun
		}
		d.Zone.stats.count(d.Status)
		return d
	}

	// rc is Passed (the last zone accounted) or Held (the last key was empty).
	if rc == Held {
		excess = 0
	}
	var maxDelay int64
	if excess > milli(limit.Delay) {
		maxDelay = limit.Zone.DelayMs(excess, limit.Delay)
	}
	zone := limit.Zone
	for i := len(held) - 1; i >= 0; i-- {
		l := held[i].limit
		e := held[i].h.Commit(now)
		if e <= milli(l.Delay) {
			continue
		}
		if d := l.Zone.DelayMs(e, l.Delay); d > maxDelay {
			maxDelay, excess, zone = d, e, l.Zone
		}
	}
	for i := range limits {
		if b := limits[i].Zone.obs.Load(); b != nil && len(keys[i]) > 0 && len(keys[i]) <= MaxReqKeyLen {
			b.o.Accepted(keys[i])
		}
	}
	d := ReqDecision{Status: ReqPassed, Excess: excess, Zone: zone}
	if maxDelay > 0 {
		d.Status = ReqDelayed
		d.DelayMs = maxDelay
		if dryRun {
			d.Status = ReqDelayedDryRun
			d.DelayMs = 0
		}
	}
	zone.stats.count(d.Status)
	return d
}

type heldLimit struct {
	h     Hold
	limit *ReqLimit
}

// ParseRate parses the value of limit_req_zone's rate= parameter ("5r/s",
// "30r/m"; a bare number means r/s) into milli-requests per second exactly as
// ngx_http_limit_req_zone does: rate * 1000 / scale, integer division, so
// "1r/m" is 16.
func ParseRate(s string) (int64, error) {
	scale := int64(1)
	if n := len(s); n >= 3 {
		switch s[n-3:] {
		case "r/s":
			s = s[:n-3]
		case "r/m":
			s, scale = s[:n-3], 60
		}
	}
	if len(s) == 0 {
		return 0, ErrInvalidRate
	}
	var rate int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || rate > (math.MaxInt64/1000-int64(c-'0'))/10 {
			return 0, ErrInvalidRate
		}
		rate = rate*10 + int64(c-'0')
	}
	if rate <= 0 {
		return 0, ErrInvalidRate
	}
	return rate * 1000 / scale, nil
}

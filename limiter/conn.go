package limiter

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// MaxConnKeyLen is the longest key a ConnZone records: nginx stores the
// length in a u_char, logs "the value of the ... key is more than 255 bytes"
// and skips the limit for longer keys. Acquire admits such keys untracked so
// the caller can do the same.
const MaxConnKeyLen = 255

// connHdr is the node header in words: hash and meta (low 32 bits: the
// connection count, nginx lc->conn). There is no LRU: a limit_conn node lives
// exactly as long as its count is non-zero.
const connHdr = 2

type connShard struct {
	mu sync.Mutex
	t  table
}

type paddedConnShard struct {
	connShard
	_ [(cacheLine - unsafe.Sizeof(connShard{})%cacheLine) % cacheLine]byte
}

// ConnZone is a limit_conn_zone: per-key counts of requests in progress
// (nginx counts requests, not TCP connections, despite the name), in a
// bounded store.
//
// The zero value is not usable; create zones with NewConnZone. All methods
// are safe for concurrent use by any number of goroutines.
type ConnZone struct {
	name   string
	shift  uint
	shards []paddedConnShard
	hash   func([]byte) uint64

	passed, rejected atomic.Uint64 // Acquire results, for metrics (see Stats)

	// Fleet-wide limits (package fleet): obs learns of every acquire and
	// release; remote holds the other nodes' counts by key hash, replaced
	// whole by the sync goroutine.
	obs    atomic.Pointer[connObserverBox]
	remote atomic.Pointer[map[uint64]int32]
}

// ConnObserver learns of the requests a ConnZone counts, for fleet-wide
// limits. Both methods are called on the request's goroutine after the
// zone's lock is released, with key borrowed for the call; they must not
// block. h is the key's hash, the same in both calls.
type ConnObserver interface {
	Acquired(key []byte, h uint64)
	Released(h uint64)
}

type connObserverBox struct{ o ConnObserver }

// SetObserver sets (or with nil clears) the zone's observer. Any goroutine.
func (z *ConnZone) SetObserver(o ConnObserver) {
	if o == nil {
		z.obs.Store(nil)
		return
	}
	z.obs.Store(&connObserverBox{o})
}

// SetRemote installs the other nodes' request counts by key hash (as
// given to ConnObserver): Acquire refuses when the local count plus the
// remote one reaches the limit. The map must not change afterwards. Any
// goroutine.
func (z *ConnZone) SetRemote(m map[uint64]int32) { z.remote.Store(&m) }

// Hash is the key hash the zone uses (and gives to its observer).
func (z *ConnZone) Hash(key []byte) uint64 { return z.hash(key) }

// NewConnZone creates the zone of "limit_conn_zone KEY zone=name:size". See
// Capacity for how many keys fit.
func NewConnZone(name string, size int64) *ConnZone {
	return newConnZone(name, size, shardCount(size))
}

func newConnZone(name string, size int64, shards int) *ConnZone {
	z := &ConnZone{
		name:   name,
		shards: make([]paddedConnShard, shards),
		hash:   xxhash.Sum64,
	}
	bits := 0
	for 1<<bits < shards {
		bits++
	}
	z.shift = uint(64 - bits)
	for i := range z.shards {
		z.shards[i].t = newTable(size/int64(shards), connHdr)
	}
	return z
}

// Name returns the zone name given to NewConnZone.
func (z *ConnZone) Name() string { return z.name }

// Capacity returns how many distinct keys of keyLen bytes can be tracked at
// once. A node is a 16-byte header plus the key rounded up to 8 bytes (then
// to a slab size class), plus ~11 bytes of hash index: for
// $binary_remote_addr 24 bytes (IPv4) or 32 bytes (IPv6), i.e. about 30,000
// IPv4 or 23,000 IPv6 keys per MiB (nginx on 64-bit: 64 bytes per state,
// about 16,000 per MiB).
func (z *ConnZone) Capacity(keyLen int) int {
	return len(z.shards) * z.shards[0].t.capacity(keyLen)
}

// Bytes returns the memory the zone reserved.
func (z *ConnZone) Bytes() int64 {
	var n int64
	for i := range z.shards {
		n += z.shards[i].t.bytes()
	}
	return n
}

// ConnToken is the receipt of a successful Acquire. The zero ConnToken
// (returned for untracked keys) releases nothing.
type ConnToken struct {
	z     *ConnZone
	shard uint32
	off   uint32
	hash  uint64
}

// Acquire counts one more request for key, as ngx_http_limit_conn_handler
// does for "limit_conn zone limit": it refuses when the key already has
// limit requests in progress, and refuses when the key is new and the zone
// has no room ("limit_conn" has no eviction: nginx answers limit_conn_status,
// default 503). A refusal changes nothing. key is borrowed for the call.
//
// An empty key or one longer than MaxConnKeyLen is not limited: ok is true
// and the token is zero. Otherwise a successful Acquire must be paired with
// exactly one Release of its token when the request finishes (nginx's pool
// cleanup). With several limit_conn in one location, release the tokens
// already acquired when a later one refuses (ngx_http_limit_conn_cleanup_all).
// Under limit_conn_dry_run the caller ignores a refusal; as in nginx the
// refused request is not counted.
func (z *ConnZone) Acquire(key []byte, limit int) (ok bool, token ConnToken) {
	if len(key) == 0 || len(key) > MaxConnKeyLen {
		return true, ConnToken{}
	}
	h := z.hash(key)
	var others int64
	if m := z.remote.Load(); m != nil {
		others = int64((*m)[h])
	}
	if others >= int64(limit) {
		z.rejected.Add(1)
		return false, ConnToken{}
	}
	si := uint32(h >> z.shift)
	s := &z.shards[si].connShard
	s.mu.Lock()
	off, pos, found := s.t.find(key, h)
	if found {
		meta := &s.t.arena[off+1]
		if int64(uint32(*meta))+others >= int64(limit) {
			s.mu.Unlock()
			z.rejected.Add(1)
			return false, ConnToken{}
		}
		*meta++
		s.mu.Unlock()
		z.passed.Add(1)
		if b := z.obs.Load(); b != nil {
			b.o.Acquired(key, h)
		}
		return true, ConnToken{z: z, shard: si, off: off, hash: h}
	}
	off, ok = s.t.alloc(s.t.nodeWords(len(key)))
	if !ok {
		s.mu.Unlock()
		z.rejected.Add(1)
		return false, ConnToken{}
	}
	s.t.link(off, key, h, pos)
	// nginx creates the node with conn = 1 without comparing to the limit,
	// which the configuration guarantees is at least 1.
	s.t.arena[off+1]++
	s.mu.Unlock()
	z.passed.Add(1)
	if b := z.obs.Load(); b != nil {
		b.o.Acquired(key, h)
	}
	return true, ConnToken{z: z, shard: si, off: off, hash: h}
}

// Release ends one request counted by Acquire (ngx_http_limit_conn_cleanup)
// and frees the key's node when its count reaches zero. Releasing the zero
// token is a no-op. Releasing a token twice is a bug; it is ignored when the
// node has since been freed or reused by another key, but would otherwise
// undercount the key.
func (z *ConnZone) Release(token ConnToken) {
	if token.z == nil {
		return
	}
	if token.z != z {
		panic("limiter: ConnZone.Release: token from zone " + token.z.name + " released to " + z.name)
	}
	s := &z.shards[token.shard].connShard
	s.mu.Lock()
	a := s.t.arena[token.off : token.off+connHdr : token.off+connHdr]
	if a[0] == token.hash && uint32(a[1]) != 0 && s.t.pages[token.off/pageWords].class != pageFree {
		a[1]--
		if uint32(a[1]) == 0 {
			s.t.remove(token.off)
		}
	}
	s.mu.Unlock()
	if b := z.obs.Load(); b != nil {
		b.o.Released(token.hash)
	}
}

// Count returns the number of requests in progress for key.
func (z *ConnZone) Count(key []byte) int {
	if len(key) == 0 || len(key) > MaxConnKeyLen {
		return 0
	}
	h := z.hash(key)
	s := &z.shards[h>>z.shift].connShard
	s.mu.Lock()
	defer s.mu.Unlock()
	if off, _, found := s.t.find(key, h); found {
		return int(uint32(s.t.arena[off+1]))
	}
	return 0
}

// Len returns the number of keys with requests in progress.
func (z *ConnZone) Len() int {
	n := 0
	for i := range z.shards {
		s := &z.shards[i]
		s.mu.Lock()
		n += s.t.live
		s.mu.Unlock()
	}
	return n
}

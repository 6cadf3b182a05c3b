package cachestore

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"
)

// lockTable holds the proxy_cache_lock state of a zone: at most one
// in-flight fetch per key, sharded by hash so that locking different keys
// rarely contends.
type lockTable struct {
	shards [32]lockShard
}

type lockShard struct {
	mu sync.Mutex
	m  map[uint64]*keyLock
	_  [40]byte
}

func (t *lockTable) init() {
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]*keyLock)
	}
}

// keyLock is one key's fetch in progress (nginx's fcn->updating with
// fcn->lock_time). done is shared by every waiter, so waiting allocates
// nothing per waiter.
type keyLock struct {
	key      []byte
	hash     uint64
	shard    *lockShard
	done     chan struct{}
	timer    *time.Timer
	released atomic.Bool
	release  func()
}

func noRelease() {}

// Lock implements proxy_cache_lock for a key that missed (hash = Hash(key)).
//
// The first caller becomes the leader (leader true, wait nil): it fetches
// from upstream, stores the response if cacheable, and must call release
// (idempotent) whatever the outcome. Later callers for the same key get
// leader false and wait, a channel closed when the leader releases; they
// then Get again, serving the entry on a hit. On a miss (the response was
// not cacheable, or the leader failed), a waiter whose own
// proxy_cache_lock_timeout has not run out calls Lock again (one of them
// becomes the next leader, as in ngx_http_file_cache_lock); one whose time
// is up goes upstream and does not store the response (nginx's
// NGX_HTTP_CACHE_SCARCE path).
//
// timeout bounds the lock itself (nginx's proxy_cache_lock_age; pass the
// lock timeout when they are equal, as by default, 5 s): when it runs out
// the lock is released as if the leader had finished, waking the waiters,
// and the next caller becomes a leader. So a waiter never waits longer than
// timeout. timeout <= 0 means the lock lasts until release.
//
// A different key with the same 64-bit hash as a locked key gets leader
// true with a no-op release: it fetches without coalescing, never waits on
// another key's fetch. Waiters allocate nothing; a leader allocates its
// lock. Any goroutine may call Lock; the channel may be selected on from
// anywhere.
func (z *Zone) Lock(key []byte, hash uint64, timeout time.Duration) (leader bool, wait <-chan struct{}, release func()) {
	sh := &z.locks.shards[hash&31]
	sh.mu.Lock()
	if l := sh.m[hash]; l != nil {
		sh.mu.Unlock()
		if bytes.Equal(l.key, key) {
			return false, l.done, noRelease
		}
		return true, nil, noRelease
	}
	l := &keyLock{
		key:   bytes.Clone(key),
		hash:  hash,
		shard: sh,
		done:  make(chan struct{}),
	}
	l.release = l.unlock
	sh.m[hash] = l
	if timeout > 0 {
		l.timer = time.AfterFunc(timeout, l.release)
	}
	sh.mu.Unlock()
	return true, nil, l.release
}

func (l *keyLock) unlock() {
	if l.released.Swap(true) {
		return
	}
	l.shard.mu.Lock() // also orders the read of l.timer after Lock set it
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.shard.m[l.hash] == l {
		delete(l.shard.m, l.hash)
	}
	l.shard.mu.Unlock()
	close(l.done)
}

// Package limiter implements nginx's limit_req and limit_conn zones
// (ngx_http_limit_req_module.c, ngx_http_limit_conn_module.c) for
// edgeproxy's event loops: same arithmetic, same eviction and the same
// refusals when a zone is full, so an unchanged nginx.conf limits the same
// requests.
//
// # limit_req
//
// A ReqZone keeps, per key, nginx's leaky bucket {excess in milli-requests,
// last in ms}. A request at now computes
//
//	ms     = now - last        (ms < -60000 → 1, ms < 0 → 0: nginx's clock quirks)
//	excess = excess - rate*ms/1000 + 1000, clamped at 0
//
// and is rejected (node untouched) when excess > burst*1000, otherwise the
// node takes the new excess and is delayed (excess - delay*1000)*1000/rate ms
// when excess > delay*1000. A key's first request starts at excess 0.
// Decide serves a location with one limit_req; CheckReq runs all of a
// location's limit_req in nginx's two phases (Lookup pins the earlier zones,
// Commit accounts them once every zone accepted, Release drops the pins when
// one rejected) and yields the $limit_req_status and the delay.
//
// Storage is bounded by the zone size exactly as a shared-memory slab: when
// a new key finds no room, up to two least-recently-used keys idle for 60 s
// with a drained bucket are reclaimed, then the LRU key is evicted by force,
// and if that still frees no room of the right size the request is rejected
// as "could not allocate node" (ngx_http_limit_req_expire). Each of up to 64
// shards (picked by xxhash of the key) has its own mutex, slab and LRU, so
// "least recently used" and "full" are per shard; shard count depends on the
// size only, so capacity does not change with GOMAXPROCS.
//
// # limit_conn
//
// A ConnZone counts requests in progress per key: Acquire refuses at
// count >= limit or when a new key finds the zone full (there is no eviction
// in limit_conn), Release decrements and frees the node at zero.
//
// # Time and concurrency
//
// Callers pass now in milliseconds from a monotonic clock, normally their
// event loop's cached time, as nginx uses ngx_current_msec; tests pass the
// times they want. Every exported function and method is safe for
// concurrent use. Keys are borrowed only for the duration of a call. The
// steady state (existing keys, and new keys in a zone that reached its size)
// performs no allocations.
//
// # Differences from nginx
//
//   - Keys are hashed with xxhash, not crc32, and compared in full.
//   - A node never spans shards, so a key larger than one shard's pages (a
//     shard is size/64 for zones of 4 MiB and more, at least 64 KiB
//     otherwise) is always refused as "could not allocate node"; nginx can
//     store up to the whole zone. Real keys are far smaller.
//   - rate*ms saturates instead of wrapping (reachable in nginx only with a
//     broken clock).
package limiter

// Package cachestore is the in-memory response cache behind proxy_cache:
// one Zone per proxy_cache_path keys_zone, on ristretto.
//
// The pipeline's flow for a cacheable request, mirroring ngx_http_upstream_cache
// and ngx_http_file_cache.c:
//
//	key := rendered proxy_cache_key; h := Hash(key)
//	e, st, scratch := zone.Lookup(key, h, req, scratch, now)
//	Hit     → write e.Head()/e.Body() (plus Date, Server, Connection, Age)
//	Expired → zone.Lock(key, h, max) claims the update (nginx's fcn->updating):
//	          the claimant fetches (with e.ETag()/e.LastModified() under
//	          proxy_cache_revalidate; a 304 stores e.Refresh(now, d)), others
//	          serve e if e.StaleWhileUpdating allows (UPDATING); after an
//	          upstream failure e.StaleOnError decides
//	Miss    → zone.CountUse(h, min_uses); zone.Lock(key, h, lock_timeout) when
//	          proxy_cache_lock is on; fetch; d := Evaluate(status, &hdrs, valid,
//	          ignore, now); if d.Cacheable { zone.Set(NewEntry(...)) }; release()
//
// Storage is best-effort (ristretto may drop or refuse a Set; nothing here
// relies on reading its own writes), bounded by max_size in bytes and by the
// keys_zone size in entries, and entries not hit for inactive= are removed as
// by nginx's cache manager. Entries are immutable and safe to read after they
// leave the zone.
//
// Where nginx 1.22 and RFC 9111 disagree, this package follows nginx except
// where the RFC is cheap to honour; Evaluate, AppendVariant, UseCounter,
// Zone.Lock and Entry.StaleWhileUpdating list each difference where it
// arises.
package cachestore

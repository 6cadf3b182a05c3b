package pipeline

import (
	"bytes"
	"sync"
	"time"

	"edgeproxy/cachestore"
	"edgeproxy/http1"
	"edgeproxy/proxy"
	"edgeproxy/snapshot"
)

// cacheCall is the proxy_cache part of an upstream call: what the worker
// needs to store the response, and the stale entry to fall back on.
type cacheCall struct {
	zone    *cachestore.Zone
	key     []byte
	hash    uint64
	store   bool
	conf    *snapshot.CacheConf
	stale   *cachestore.Entry
	hit     *cachestore.Entry // filled by a proxy_cache_lock waiter
	storeAt time.Time
}

// lockResults hands a lock leader's fresh entry to the waiters at once:
// ristretto applies Set asynchronously, so a Get right after it may miss.
var lockResults sync.Map // uint64 hash -> *cachestore.Entry

// cacheLookup runs proxy_cache for a proxied location before going
// upstream. It returns true when the response was served from the cache.
func (c *Conn) cacheLookup(loc *snapshot.Location) bool {
	x := &c.w.x
	cc := &loc.Cache
	cl := &c.call.cache
	*cl = cacheCall{key: cl.key[:0]}
	m := c.w.req.MethodID()
	if m != http1.MethodGET && !(m == http1.MethodHEAD && cc.MethodHEAD) && !(m == http1.MethodPOST && cc.MethodPOST) {
		return false
	}
	x.cacheKey = c.eval(x.cacheKey[:0], cc.Key)
	hash := cachestore.Hash(x.cacheKey)
	cl.zone, cl.hash, cl.conf = cc.Zone, hash, cc
	cl.key = append(cl.key, x.cacheKey...)
	noCache := anyTrue(c, cc.NoCache)
	if anyTrue(c, cc.Bypass) {
		x.cacheStatus = "BYPASS"
		cl.store = !noCache
		return false
	}
	e, st, scratch := cc.Zone.Lookup(x.cacheKey, hash, &c.w.req, x.cacheScratch, c.clock())
	x.cacheScratch = scratch
	switch st {
	case cachestore.Hit:
		x.cacheStatus = "HIT"
		c.serveCached(e)
		return true
	case cachestore.Expired:
		x.cacheStatus = "EXPIRED"
		cl.stale = e
	default:
		x.cacheStatus = "MISS"
	}
	cl.store = !noCache
	return false
}

// anyTrue reports whether a proxy_cache_bypass / proxy_no_cache list has a
// value that is neither empty nor "0".
func anyTrue(c *Conn, ts []snapshot.Template) bool {
	x := &c.w.x
	for i := range ts {
		x.scratch = c.eval(x.scratch[:0], &ts[i])
		if len(x.scratch) > 0 && !(len(x.scratch) == 1 && x.scratch[0] == '0') {
			return true
		}
	}
	return false
}

// serveCached writes a cached response on the loop: the stored head lines
// and body, with this request's Server, Date and Connection. A conditional
// request that matches the entry's validators gets 304 from the cache.
func (c *Conn) serveCached(e *cachestore.Entry) {
	x := &c.w.x
	r := &c.w.req
	x.hdrs = append(x.hdrs[:0], e.Head()...)
	if e.Status() == 200 {
		inm, ims := r.Header(hIfNoneMatch), r.Header(hIfModifiedSince)
		if (inm != nil && etagListMatch(inm, e.ETag())) || (inm == nil && ims != nil && len(e.LastModified()) > 0 && bytes.Equal(ims, e.LastModified())) {
			h := head{status: 304, contentLength: -1, upstream: true}
			c.writeHead(&h)
			return
		}
	}
	h := head{status: e.Status(), contentLength: e.ContentLength(), upstream: true}
	c.writeHead(&h)
	if !x.head {
		c.writeBody(e.Body())
	}
}

func etagListMatch(list, etag []byte) bool {
	if len(etag) == 0 {
		return false
	}
	if bytes.Equal(bytes.TrimSpace(list), []byte("*")) {
		return true
	}
	for _, p := range bytes.Split(list, []byte(",")) {
		p = bytes.TrimSpace(p)
		p = bytes.TrimPrefix(p, []byte("W/"))
		if bytes.Equal(p, bytes.TrimPrefix(etag, []byte("W/"))) {
			return true
		}
	}
	return false
}

// jobHeaders lets the cache compute a Vary variant from the request headers
// copied into the job (the worker must not touch the loop's buffers).
type jobHeaders struct{ j *proxy.Job }

func (h jobHeaders) NumHeaders() int                     { return h.j.NumHeaders() }
func (h jobHeaders) HeaderAt(i int) (name, value []byte) { return h.j.Header(i) }

// cacheBefore runs in the worker before going upstream: with
// proxy_cache_lock, one request per key goes upstream and the others wait
// (off the loop) for its entry. It returns a release func for the leader.
func cacheBefore(cl *cacheCall) (release func(), served bool) {
	if cl.zone == nil || !cl.store || !cl.conf.Lock {
		return nil, false
	}
	leader, wait, rel := cl.zone.Lock(cl.key, cl.hash, cl.conf.LockTimeout)
	if leader {
		return rel, false
	}
	t := time.NewTimer(cl.conf.LockTimeout)
	defer t.Stop()
	select {
	case <-wait:
	case <-t.C:
		return nil, false // nginx: after proxy_cache_lock_timeout, go upstream uncached
	}
	if v, ok := lockResults.Load(cl.hash); ok {
		if e := v.(*cachestore.Entry); bytes.Equal(e.PrimaryKey(), cl.key) {
			cl.hit = e
			return nil, true
		}
	}
	if e, st := cl.zone.Get(cl.key, cl.hash, time.Now()); st == cachestore.Hit {
		cl.hit = e
		return nil, true
	}
	return nil, false
}

// cacheAfter runs in the worker after a successful upstream exchange: a
// cacheable response (RFC 9111 and nginx's rules in cachestore.Evaluate)
// becomes an immutable entry.
func cacheAfter(cl *cacheCall, job *proxy.Job, leader bool) {
	if cl.zone == nil || !cl.store || job.Streaming || job.RespBody.Spilled() {
		return // a relayed or spilled body is not in memory to store
	}
	resp := job.Response()
	var rh cachestore.ResponseHeaders
	resp.Header.VisitAll(func(k, v []byte) { rh.Add(k, v) })
	now := time.Now()
	d := cachestore.Evaluate(job.Status, &rh, cl.conf.Valid, cl.conf.Ignore, now)
	if !d.Cacheable || !cl.zone.CountUse(cl.hash, cl.conf.MinUses) {
		return
	}
	h := &job.Head
	var head []byte
	if h.ContentType != nil {
		head = append(head, "Content-Type: "...)
		head = append(head, h.ContentType...)
		head = append(head, "\r\n"...)
	}
	head = append(head, h.Lines...)
	spec := cachestore.EntrySpec{Key: cl.key, Status: job.Status, Head: head, Body: job.ResponseBody(), StoredAt: now,
		Decision: d, ETag: rh.ETag, LastModified: rh.LastModified}
	if vary := resp.Header.Peek("Vary"); len(vary) > 0 && cl.conf.Ignore&cachestore.IgnoreVary == 0 {
		spec.VaryNames = cachestore.NormalizeVary(nil, [][]byte{vary})
		spec.Variant = cachestore.AppendVariant(nil, spec.VaryNames, jobHeaders{job})
	}
	e := cachestore.NewEntry(spec)
	cl.zone.Set(e)
	if leader {
		lockResults.Store(cl.hash, e)
		time.AfterFunc(cl.conf.LockTimeout+time.Second, func() { lockResults.CompareAndDelete(cl.hash, e) })
	}
}

// staleFor reports whether an upstream failure (err set) or status may be
// answered with the stale entry (proxy_cache_use_stale).
func staleFor(cl *cacheCall, failed bool, timeout bool, status int) bool {
	if cl.stale == nil {
		return false
	}
	u := &cl.conf.UseStale
	if failed {
		return (timeout && u.Timeout) || (!timeout && u.Error)
	}
	switch status {
	case 500:
		return u.HTTP500
	case 502:
		return u.HTTP502
	case 503:
		return u.HTTP503
	case 504:
		return u.HTTP504
	case 403:
		return u.HTTP403
	case 404:
		return u.HTTP404
	case 429:
		return u.HTTP429
	}
	return false
}

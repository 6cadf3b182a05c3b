package pipeline

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"edgeproxy/cachestore"
	"edgeproxy/http1"
	"edgeproxy/proxy"
	"edgeproxy/snapshot"
	"edgeproxy/static"
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
	hit     *cachestore.Entry // filled by a proxy_cache_lock waiter or a 304 to a revalidation
	hitName string            // $upstream_cache_status for hit: HIT or REVALIDATED
	stored  *cachestore.Entry // the upstream response, as stored by cacheAfter
	storeAt time.Time

	// revalidate: the request carries the stale entry's validators
	// (proxy_cache_revalidate), and a 304 refreshes the entry.
	revalidate bool
	// release ends this request's claim on updating the expired entry
	// (nginx's fcn->updating); the worker takes it over in cacheBefore.
	release func()
}

// updatingMaxAge bounds how long one request may hold the "updating"
// claim on an expired entry. nginx keeps fcn->updating until the updating
// request ends, which upstream timeouts bound; this is the safety net for
// a claim whose request never reached the worker.
const updatingMaxAge = 60 * time.Second

// lockResults hands a lock leader's fresh entry to the waiters at once:
// ristretto applies Set asynchronously, so a Get right after it may miss.
var lockResults sync.Map // uint64 hash -> *cachestore.Entry

// cacheLookup runs proxy_cache for a proxied location before going
// upstream. It returns true when the response was served from the cache.
func (c *Conn) cacheLookup(loc *snapshot.Location) bool {
	x := &c.w.x
	cc := &loc.Cache
	cl := &c.call.cache
	cl.dropCacheClaim() // a claim no worker took over (e.g. an upgrade)
	*cl = cacheCall{key: cl.key[:0]}
	if p := cc.Purge; p != nil && bytes.Equal(c.w.req.Method(), p.Method) {
		c.cachePurge(loc, p)
		return true
	}
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
		cl.stale = e
		cl.store = !noCache
		cl.revalidate = cc.Revalidate && (len(e.ETag()) > 0 || len(e.LastModified()) > 0)
		return c.cacheExpired(loc, e)
	default:
		x.cacheStatus = "MISS"
	}
	cl.store = !noCache
	return false
}

// cacheExpired handles an expired entry as ngx_http_file_cache_read and
// ngx_http_upstream_cache do: the first request claims the update
// (EXPIRED: it goes upstream); requests arriving while that update runs get
// the stale entry (UPDATING) when proxy_cache_use_stale updating or the
// response's stale-while-revalidate allow it, and otherwise go upstream
// too. With proxy_cache_background_update the claiming request is also
// answered from the stale entry (STALE) while a background request
// refreshes it. It returns true when the response was served.
func (c *Conn) cacheExpired(loc *snapshot.Location, e *cachestore.Entry) bool {
	x := &c.w.x
	cl := &c.call.cache
	cc := &loc.Cache
	staleOK := e.StaleWhileUpdating(c.clock(), cc.UseStale.Updating)
	leader, _, release := cl.zone.Lock(cl.key, cl.hash, updatingMaxAge)
	if !leader {
		if staleOK {
			x.cacheStatus = "UPDATING"
			c.serveCached(e)
			return true
		}
		x.cacheStatus = "EXPIRED"
		return false
	}
	if staleOK && cc.BackgroundUpdate {
		c.backgroundUpdate(loc, release)
		x.cacheStatus = "STALE"
		c.serveCached(e)
		return true
	}
	cl.release = release
	x.cacheStatus = "EXPIRED"
	return false
}

// backgroundUpdate refreshes the expired entry of c.call.cache off the
// request (ngx_http_upstream_cache_background_update): a copy of the
// request goes upstream from its own goroutine, its response is stored as
// any other, and release ends the updating claim when it is done.
func (c *Conn) backgroundUpdate(loc *snapshot.Location, release func()) {
	cl := &c.call.cache
	bg := &cacheCall{zone: cl.zone, key: bytes.Clone(cl.key), hash: cl.hash, store: cl.store, conf: cl.conf,
		stale: cl.stale, revalidate: cl.revalidate}
	job := c.newCacheJob(loc, bg)
	settings := loc.Proxy.Settings
	go func() {
		defer release()
		if err := proxy.Do(context.Background(), settings, job); err == nil {
			cacheAfter(bg, job, true)
		}
		if resp := job.Response(); resp.IsBodyStream() {
			_ = resp.CloseBodyStream()
		}
		proxy.ReleaseJob(job)
	}()
}

// newCacheJob fills a Job for a background update the way startProxy does
// for the request itself (same method, URI, headers and proxy_set_header
// values: nginx clones the request into the background subrequest).
func (c *Conn) newCacheJob(loc *snapshot.Location, cl *cacheCall) *proxy.Job {
	x := &c.w.x
	r := &c.w.req
	p := loc.Proxy
	job := proxy.AcquireJob()
	job.Method = append(job.Method[:0], r.Method()...)
	if r.MethodID() == http1.MethodHEAD && loc.Cache.ConvertHead {
		job.Method = append(job.Method[:0], "GET"...)
	}
	job.RequestURI = append(job.RequestURI[:0], r.URI()...)
	job.URI = append(job.URI[:0], x.uri...)
	job.Args = append(job.Args[:0], x.args...)
	job.URIChanged = x.internal
	if c.remote.IsValid() {
		job.ClientIP = c.remote.Addr().Unmap()
	}
	if p.HashKey != nil {
		job.HashKey = c.eval(job.HashKey[:0], p.HashKey)
	}
	for i, n := 0, r.NumHeaders(); i < n; i++ {
		name, value := r.HeaderAt(i)
		if !cacheStripsHeader(name) {
			job.AddHeader(name, value)
		}
	}
	addCacheHeaders(job, cl)
	for i := range p.SetValues {
		x.scratch = c.eval(x.scratch[:0], &p.SetValues[i])
		job.AddSetValue(x.scratch)
	}
	return job
}

// cacheStripsHeader reports the client headers nginx does not pass
// upstream from a location with proxy_cache (ngx_http_proxy_cache_headers):
// the cache must get the full, unconditional response to store it.
func cacheStripsHeader(name []byte) bool {
	switch len(name) {
	case 5:
		return bytes.EqualFold(name, hRange)
	case 8:
		return bytes.EqualFold(name, hIfMatch) || bytes.EqualFold(name, hIfRange)
	case 13:
		return bytes.EqualFold(name, hIfNoneMatch)
	case 17:
		return bytes.EqualFold(name, hIfModifiedSince)
	case 19:
		return bytes.EqualFold(name, hIfUnmodifiedSince)
	}
	return false
}

var (
	nIfNoneMatch     = []byte("If-None-Match")
	nIfModifiedSince = []byte("If-Modified-Since")
)

// addCacheHeaders adds the validators of the expired entry being
// revalidated, as nginx's $upstream_cache_etag and
// $upstream_cache_last_modified do in ngx_http_proxy_cache_headers.
func addCacheHeaders(job *proxy.Job, cl *cacheCall) {
	if cl.zone == nil || !cl.revalidate || cl.stale == nil {
		return
	}
	if lm := cl.stale.LastModified(); len(lm) > 0 {
		job.AddHeader(nIfModifiedSince, lm)
	}
	if et := cl.stale.ETag(); len(et) > 0 {
		job.AddHeader(nIfNoneMatch, et)
	}
}

// cacheServe answers from the cache after the upstream exchange, on the
// loop: a proxy_cache_lock waiter gets the leader's entry (HIT), a
// revalidation answered 304 gets the refreshed entry (REVALIDATED), and a
// conditional request whose fresh upstream response was stored and
// matches its validators gets 304, as nginx's not-modified filter does for
// cacheable responses (ngx_http_upstream_send_response sets
// r->disable_not_modified = !u->cacheable). It returns true when it
// answered.
func (c *Conn) cacheServe() bool {
	cl := &c.call.cache
	if cl.zone == nil {
		return false // not a cached request (the fields are a previous one's)
	}
	if cl.hit != nil {
		c.w.x.cacheStatus = cl.hitName
		c.serveCached(cl.hit)
		return true
	}
	if e := cl.stored; e != nil && e.Status() == 200 && (e.AcceptRanges() || c.notModified(e)) {
		// A cacheable response gets nginx's not-modified and range
		// filters (Accept-Ranges from the app enables ranges instead of
		// being copied); for one not yet served from the cache, nginx
		// allows a single range only (r->single_range).
		c.serveEntry(e, true)
		return true
	}
	return false
}

// cachePurge answers a purge request (the proxy_cache_purge extension):
// 403 from an address not in the "from" list, 404 when nothing matched,
// else 200 with a short text saying how many entries went. A cache key
// ending in '*' purges every entry whose key starts with the rest (the
// walk is O(entries), on this loop: an administrative operation).
func (c *Conn) cachePurge(loc *snapshot.Location, p *snapshot.PurgeConf) {
	x := &c.w.x
	var addr netip.Addr
	if c.remote.IsValid() {
		addr = c.remote.Addr().Unmap()
	}
	if !p.Allows(addr) {
		c.finalize(403)
		return
	}
	z := loc.Cache.Zone
	x.cacheKey = c.eval(x.cacheKey[:0], loc.Cache.Key)
	key := x.cacheKey
	n := 0
	if len(key) > 0 && key[len(key)-1] == '*' {
		pfx := key[:len(key)-1]
		n = z.PurgePrefix(pfx)
		lockResults.Range(func(k, v any) bool {
			if bytes.HasPrefix(v.(*cachestore.Entry).Key(), pfx) {
				lockResults.Delete(k)
			}
			return true
		})
	} else if z.Purge(key) {
		n = 1
		lockResults.Delete(cachestore.Hash(key))
	}
	if f := loc.Cache.Fleet; f != nil {
		// The other nodes purge their copies too (whether or not this
		// node had one): published off the loop.
		f.Publish(key)
	}
	if n == 0 {
		c.finalize(404)
		return
	}
	x.scratch = append(x.scratch[:0], "Successful purge\nKey: "...)
	x.scratch = append(x.scratch, key...)
	x.scratch = append(x.scratch, "\nEntries: "...)
	x.scratch = strconv.AppendInt(x.scratch, int64(n), 10)
	x.scratch = append(x.scratch, '\n')
	c.writeSimple(200, x.scratch, textPlainPurge, true)
}

var textPlainPurge = []byte("text/plain")

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
func (c *Conn) serveCached(e *cachestore.Entry) { c.serveEntry(e, false) }

// serveEntry is serveCached; singleRange refuses multipart ranges (nginx's
// r->single_range for a response not read from the cache).
func (c *Conn) serveEntry(e *cachestore.Entry, singleRange bool) {
	x := &c.w.x
	if c.notModified(e) {
		// nginx sends no Content-Type with a 304 (checked against 1.22).
		_, rest := splitContentType(e.Head())
		x.hdrs = append(x.hdrs[:0], rest...)
		h := head{status: 304, contentLength: -1, upstream: true}
		c.writeHead(&h)
		return
	}
	x.hdrs = append(x.hdrs[:0], e.Head()...)
	vary := false
	if x.loc.Gzip.On {
		// The gzip filter runs on cached responses too, before the range
		// filter, and a compressed response gets no ranges
		// (ngx_http_gzip_header_filter clears r->allow_ranges).
		var gz bool
		if vary, gz = c.cachedGzip(e); gz {
			return
		}
	}
	if e.AcceptRanges() && e.Status() == 200 {
		if c.serveRanges(e, singleRange, vary) {
			return
		}
		x.hdrs = append(x.hdrs, "Accept-Ranges: bytes\r\n"...)
	}
	h := head{status: e.Status(), contentLength: e.ContentLength(), upstream: true, vary: vary}
	c.writeHead(&h)
	if !x.head {
		c.writeEntryBody(e.Body())
	}
}

// cachedGzip compresses a cached response when gzip applies to it, as
// finishProxy does for a fresh one, and reports gzip_vary's verdict. It
// returns gz true when it wrote the response.
func (c *Conn) cachedGzip(e *cachestore.Entry) (vary, gz bool) {
	ct, rest := splitContentType(e.Head())
	if ct == nil {
		return false, false
	}
	vary, gz = c.gzipCheck(e.Status(), ct, e.ContentLength(), hasContentEncoding(rest))
	if !gz {
		return vary, false
	}
	x := &c.w.x
	x.hdrs = append(x.hdrs[:0], rest...)
	h := head{status: e.Status(), contentType: ct, contentLength: e.ContentLength(), upstream: true}
	c.writeGzipped(&h, e.Body())
	return vary, true
}

// splitContentType splits the Content-Type line off a stored head, where
// cacheAfter puts it first.
func splitContentType(head []byte) (ct, rest []byte) {
	const p = "Content-Type: "
	if !bytes.HasPrefix(head, []byte(p)) {
		return nil, head
	}
	i := bytes.Index(head, crlf)
	if i < 0 {
		return nil, head
	}
	return head[len(p):i], head[i+2:]
}

func hasContentEncoding(lines []byte) bool {
	for len(lines) > 0 {
		if hasPrefixFold(lines, "content-encoding:") {
			return true
		}
		i := bytes.Index(lines, crlf)
		if i < 0 {
			return false
		}
		lines = lines[i+2:]
	}
	return false
}

// writeEntryBody queues a cached body. A large one goes out by reference,
// in one writev with the pending output, instead of being copied into the
// output buffer (writeBodyRaw copies up to 16 KiB): the entry is immutable,
// so the transport may read it whenever it writes. It saves a memmove of
// the body per hit (1.5% of the CPU of a 10 KiB hit in a profile). Not on
// TLS, whose transport writes each buffer as its own record.
func (c *Conn) writeEntryBody(b []byte) {
	if len(b) < 4<<10 || c.tls {
		c.writeBody(b)
		return
	}
	c.w.x.bodySent += int64(len(b))
	c.w.iov = append(c.w.iov, c.w.out, b)
	c.t.Write(c.w.iov)
	clear(c.w.iov)
	c.w.iov = c.w.iov[:0]
	c.w.out = c.w.out[:0]
}

// serveRanges answers a Range request from a cached 200 as nginx's range
// filter does (ngx_http_range_filter_module, checked against nginx 1.22):
// one range is a 206 with Content-Range, several a multipart/byteranges
// 206, an unsatisfiable set a 416 error page. It returns false when the
// whole response is to be sent (no or ignored Range, If-Range mismatch).
func (c *Conn) serveRanges(e *cachestore.Entry, singleRange, vary bool) bool {
	x := &c.w.x
	r := &c.w.req
	rh := r.Header(hRange)
	if rh == nil || !entryIfRange(e, r.Header(hIfRange)) {
		return false
	}
	body := e.Body()
	size := int64(len(body))
	ranges, st := static.ParseRange(rh, size, x.ranges[:0])
	x.ranges = ranges
	switch {
	case st == 416:
		// The error page keeps the stored headers but Last-Modified,
		// ETag and Accept-Ranges, and its Content-Type is text/html with
		// the stored charset (ngx_http_send_special_response).
		x.hdrs = x.hdrs[:0]
		var charset []byte
		for rest := e.Head(); len(rest) > 0; {
			i := bytes.Index(rest, crlf)
			if i < 0 {
				break
			}
			line := rest[:i+2]
			rest = rest[i+2:]
			switch {
			case hasPrefixFold(line, "content-type:"):
				charset = charsetParam(line[len("content-type:") : len(line)-2])
			case hasPrefixFold(line, "last-modified:"), hasPrefixFold(line, "etag:"):
			default:
				x.hdrs = append(x.hdrs, line...)
			}
		}
		x.hdrs = append(x.hdrs, "Content-Range: "...)
		x.hdrs = static.AppendUnsatisfiedRange(x.hdrs, size)
		x.hdrs = append(x.hdrs, "\r\n"...)
		ctype := textHTML
		if charset != nil {
			x.scratch = append(append(append(x.scratch[:0], textHTML...), "; charset="...), charset...)
			ctype = x.scratch
		}
		page := http1.ErrorPageBody(416, x.loc.ServerTokens)
		h := head{status: 416, filterStatus: 200, contentType: ctype, contentLength: int64(len(page)), upstream: true, vary: vary}
		c.writeHead(&h)
		if !x.head {
			c.writeBody(page)
		}
		return true
	case st != 206 || (len(ranges) > 1 && singleRange):
		return false
	case len(ranges) == 1:
		rg := ranges[0]
		x.hdrs = append(x.hdrs, "Content-Range: "...)
		x.hdrs = static.AppendContentRange(x.hdrs, rg, size)
		x.hdrs = append(x.hdrs, "\r\n"...)
		h := head{status: 206, filterStatus: 200, contentLength: rg.Len(), upstream: true, vary: vary}
		c.writeHead(&h)
		if !x.head {
			c.writeBody(body[rg.Start:rg.End])
		}
		return true
	}
	// Several ranges: the parts carry the stored Content-Type, the
	// response a multipart one instead.
	var ctype []byte
	x.hdrs = x.hdrs[:0]
	for rest := e.Head(); len(rest) > 0; {
		i := bytes.Index(rest, crlf)
		if i < 0 {
			break
		}
		line := rest[:i+2]
		rest = rest[i+2:]
		if hasPrefixFold(line, "content-type:") {
			ctype = bytes.TrimSpace(line[len("content-type:") : len(line)-2])
			continue
		}
		x.hdrs = append(x.hdrs, line...)
	}
	m := static.Multipart{Boundary: static.NextBoundary(), ContentType: ctype, Size: size}
	x.scratch = m.AppendContentType(x.scratch[:0])
	h := head{status: 206, filterStatus: 200, contentType: x.scratch, contentLength: m.ContentLength(ranges), upstream: true, vary: vary}
	c.writeHead(&h)
	if x.head {
		return true
	}
	for _, rg := range ranges {
		x.scratch = m.AppendPartHeader(x.scratch[:0], rg)
		c.writeBody(x.scratch)
		c.writeBody(body[rg.Start:rg.End])
	}
	x.scratch = m.AppendTrailer(x.scratch[:0])
	c.writeBody(x.scratch)
	return true
}

var crlf = []byte("\r\n")

// entryIfRange is nginx's If-Range check (ngx_http_range_header_filter):
// a value ending in '"' must equal the ETag, anything else is a date that
// must equal Last-Modified. nil (no If-Range) passes.
func entryIfRange(e *cachestore.Entry, v []byte) bool {
	if v == nil {
		return true
	}
	if len(v) >= 2 && v[len(v)-1] == '"' {
		return bytes.Equal(v, e.ETag())
	}
	lm := e.LastModified()
	return len(lm) > 0 && static.ParseHTTPTime(v) == static.ParseHTTPTime(lm) && static.ParseHTTPTime(lm) >= 0
}

// charsetParam returns the charset parameter's value of a Content-Type
// value, nil if none.
func charsetParam(v []byte) []byte {
	for i := 0; i+8 <= len(v); i++ {
		if hasPrefixFold(v[i:], "charset=") {
			cs := v[i+8:]
			if j := bytes.IndexAny(cs, "; "); j >= 0 {
				cs = cs[:j]
			}
			return bytes.Trim(cs, `"`)
		}
	}
	return nil
}

// notModified reports whether the request's If-None-Match (or, without
// it, If-Modified-Since) matches e's validators (ngx_http_not_modified_filter,
// for 200 responses only).
func (c *Conn) notModified(e *cachestore.Entry) bool {
	if e.Status() != 200 {
		return false
	}
	r := &c.w.req
	inm, ims := r.Header(hIfNoneMatch), r.Header(hIfModifiedSince)
	return (inm != nil && etagListMatch(inm, e.ETag())) || (inm == nil && ims != nil && len(e.LastModified()) > 0 && bytes.Equal(ims, e.LastModified()))
}

func etagListMatch(list, etag []byte) bool {
	if len(etag) == 0 {
		return false
	}
	if bytes.Equal(bytes.TrimSpace(list), []byte("*")) {
		return true
	}
	etag = bytes.TrimPrefix(etag, []byte("W/"))
	// Walked by hand: bytes.Split would allocate on the hit path.
	for len(list) > 0 {
		p := list
		if i := bytes.IndexByte(list, ','); i >= 0 {
			p, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		p = bytes.TrimPrefix(bytes.TrimSpace(p), []byte("W/"))
		if bytes.Equal(p, etag) {
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
	if cl.release != nil {
		// This request claimed the update of an expired entry on the loop.
		release, cl.release = cl.release, nil
		return release, false
	}
	// proxy_cache_lock applies to absent entries only: nginx reads an
	// existing (expired) file instead of locking (ngx_http_file_cache_open).
	if cl.zone == nil || !cl.store || !cl.conf.Lock || cl.stale != nil {
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
			cl.hit, cl.hitName = e, "HIT"
			return nil, true
		}
	}
	if e, st := cl.zone.Get(cl.key, cl.hash, time.Now()); st == cachestore.Hit {
		cl.hit, cl.hitName = e, "HIT"
		return nil, true
	}
	return nil, false
}

// cacheAfter runs in the worker after a successful upstream exchange: a
// cacheable response (RFC 9111 and nginx's rules in cachestore.Evaluate)
// becomes an immutable entry.
func cacheAfter(cl *cacheCall, job *proxy.Job, leader bool) {
	if cl.zone == nil {
		return
	}
	resp := job.Response()
	if cl.revalidate && job.Status == 304 && cl.stale != nil {
		cacheRevalidated(cl, job, leader)
		return
	}
	if !cl.store || job.Streaming || job.RespBody.Spilled() {
		return // a relayed or spilled body is not in memory to store
	}
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
	acceptRanges := false
	for rest := h.Lines; len(rest) > 0; {
		i := bytes.Index(rest, crlf)
		if i < 0 {
			head = append(head, rest...)
			break
		}
		line := rest[:i+2]
		rest = rest[i+2:]
		if hasPrefixFold(line, "accept-ranges:") {
			// ngx_http_upstream_copy_allow_ranges: a cacheable response's
			// Accept-Ranges enables ranges instead of being copied.
			acceptRanges = true
			continue
		}
		head = append(head, line...)
	}
	spec := cachestore.EntrySpec{Key: cl.key, Status: job.Status, Head: head, Body: job.ResponseBody(), StoredAt: now,
		Decision: d, ETag: rh.ETag, LastModified: rh.LastModified, AcceptRanges: acceptRanges}
	if vary := resp.Header.Peek("Vary"); len(vary) > 0 && cl.conf.Ignore&cachestore.IgnoreVary == 0 {
		spec.VaryNames = cachestore.NormalizeVary(nil, [][]byte{vary})
		spec.Variant = cachestore.AppendVariant(nil, spec.VaryNames, jobHeaders{job})
	}
	e := cachestore.NewEntry(spec)
	cl.zone.Set(e)
	cl.stored = e
	if leader {
		lockResults.Store(cl.hash, e)
		time.AfterFunc(cl.conf.LockTimeout+time.Second, func() { lockResults.CompareAndDelete(cl.hash, e) })
	}
}

// cacheRevalidated handles a 304 to a revalidation (nginx's
// ngx_http_upstream_test_next, NGX_HTTP_CACHE_REVALIDATED): the stored
// response is served, and stored again with a new lifetime taken from the
// 304's X-Accel-Expires/Cache-Control/Expires, or else from
// proxy_cache_valid for the stored status.
func cacheRevalidated(cl *cacheCall, job *proxy.Job, leader bool) {
	cl.hit, cl.hitName = cl.stale, "REVALIDATED"
	if !cl.store {
		return
	}
	var rh cachestore.ResponseHeaders
	job.Response().Header.VisitAll(func(k, v []byte) { rh.Add(k, v) })
	now := time.Now()
	st := cl.stale.Status()
	d := cachestore.Evaluate(st, &rh, cl.conf.Valid, cl.conf.Ignore, now)
	if !d.Cacheable {
		ttl := cachestore.ValidFor(cl.conf.Valid, st)
		if ttl <= 0 {
			return // nginx: valid stays 0, the entry is not updated
		}
		d = cachestore.Decision{Cacheable: true, TTL: ttl, Source: cachestore.SourceValid}
	}
	e := cl.stale.Refresh(now, d)
	cl.hit = e
	cl.zone.Set(e)
	if leader {
		lockResults.Store(cl.hash, e)
		time.AfterFunc(cl.conf.LockTimeout+time.Second, func() { lockResults.CompareAndDelete(cl.hash, e) })
	}
}

// dropCacheClaim ends an updating claim whose request never reached a
// worker (the client went away while its body was being read).
func (cl *cacheCall) dropCacheClaim() {
	if cl.release != nil {
		cl.release()
		cl.release = nil
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

package pipeline

import (
	"bytes"
	"net/netip"
	"strconv"
	"time"

	"edgeproxy/http1"
	"edgeproxy/limiter"
	"edgeproxy/snapshot"
	"edgeproxy/static"
)

// exchange is the per-request state, reused across the requests of a
// connection so a request allocates nothing in steady state.
type exchange struct {
	srv            *snapshot.Server
	loc            *snapshot.Location
	lims           http1.Limits
	uri            []byte // current $uri: the normalised path, changed by internal redirects
	args           []byte // current $args
	caps           []int  // regex captures of the matched location (offsets into capSrc)
	capSrc         []byte
	scratch        []byte
	path           []byte // filesystem path being served
	docRoot        []byte
	hdrs           []byte // extra response header lines for the headers list (ETag, Expires, ...)
	status         int
	redirects      int
	internal       bool
	errorPage      bool // an error_page redirect already happened
	badRequest     bool
	head           bool // HEAD request: send no body
	keepalive      time.Duration
	reqID          [32]byte
	reqIDSet       bool
	overrideStatus int // status forced by error_page (0: none)
	ranges         []static.Range
	hostCaps       []int // captures of a server_name regex, into hostSrc
	hostSrc        []byte
	outMark        int    // len(out) when this request started
	upstreamAddr   []byte // $upstream_addr of the last proxied exchange
	upstreamStatus []byte
	upstreamTime   []byte
	logBuf         []byte
	varBuf         []byte
	headSent       int64 // bytes of the response head ($bytes_sent - $body_bytes_sent)
	bodySent       int64
	gzOut          sliceWriter // compressed body
	fileBuf        []byte      // a file read whole for compression
	cacheKey       []byte
	cacheScratch   []byte
	cacheStatus    string // $upstream_cache_status
	mapDepth       int
	forceGET       bool   // X-Accel-Redirect: the redirected request is a GET
	accelType      []byte // Content-Type kept from an X-Accel-Redirect response
	accelHdrs      []byte // its Content-Disposition / Set-Cookie lines
	errBuf         []byte // error-log line being built
	lowerBuf       []byte // a lowercased Content-Type for gzip_types
	enc            uint8  // coding chosen for the response by gzipCheck (encGzip, encBrotli, encZstd)
	preEnc         string // Content-Encoding of a precompressed file being served (gzip_static)
	preVary        bool   // gzip_static on found a .gz: "Vary: Accept-Encoding" under gzip_vary
	prePath        []byte // path of the precompressed file
}

func (x *exchange) init() {
	x.uri = make([]byte, 0, 256)
	x.hostCaps = make([]int, 0, 20)
	x.args = make([]byte, 0, 128)
	x.caps = make([]int, 0, 20)
	x.scratch = make([]byte, 0, 512)
	x.path = make([]byte, 0, 512)
	x.docRoot = make([]byte, 0, 256)
	x.hdrs = make([]byte, 0, 512)
}

func (x *exchange) reset(c *Conn, srv *snapshot.Server) {
	x.srv = srv
	x.loc = srv.Root
	x.uri = append(x.uri[:0], c.w.req.Path()...)
	x.args = append(x.args[:0], c.w.req.Args()...)
	x.caps = x.caps[:0]
	x.capSrc = x.capSrc[:0]
	x.hdrs = x.hdrs[:0]
	x.status = 0
	x.redirects = 0
	x.internal = false
	x.errorPage = false
	x.badRequest = false
	x.head = c.w.req.MethodID() == http1.MethodHEAD
	if !c.limitDone {
		c.limitReq, c.limitConn = 0, 0
	}
	x.reqIDSet = false
	x.overrideStatus = 0
	x.headSent, x.bodySent = 0, 0
	x.cacheStatus = ""
	x.forceGET = false
	x.preEnc, x.preVary = "", false
	x.accelType, x.accelHdrs = x.accelType[:0], x.accelHdrs[:0]
	x.upstreamAddr, x.upstreamStatus, x.upstreamTime = x.upstreamAddr[:0], x.upstreamStatus[:0], x.upstreamTime[:0]
}

// maxRedirects bounds internal redirects like nginx's
// NGX_HTTP_MAX_URI_CHANGES ("rewrite or internal redirection cycle").
const maxRedirects = 10

// serve routes the parsed request and produces its response.
func (c *Conn) serve() {
	srv := c.selectServer()
	x := &c.w.x
	x.reset(c, srv)
	x.outMark = len(c.w.out)
	if !c.w.req.KeepAlive() {
		c.closeNext = true
	}
	if c.tls && srv.Root.TLS.Verify != snapshot.VerifyOff && !c.clientCertOK(srv) {
		return
	}
	if c.w.req.Expect100() {
		// nginx answers "100 Continue" as soon as it starts reading or
		// discarding the body (ngx_http_test_expect), so the client sends
		// it and the connection stays usable.
		c.w.out = append(c.w.out, "HTTP/1.1 100 Continue\r\n\r\n"...)
	}
	c.route()
}

// clientCertOK enforces ssl_verify_client of the server chosen by Host once
// the request header is read, as ngx_http_process_request does: a failed
// verification is "400 The SSL certificate error" (495) unless
// optional_no_ca lets it through, no certificate with "on" is "400 No
// required SSL certificate was sent" (496); error_page may catch both.
func (c *Conn) clientCertOK(srv *snapshot.Server) bool {
	cc := c.clientCert
	mode := srv.Root.TLS.Verify
	status := 0
	switch {
	case cc != nil && cc.Failed && !(mode == snapshot.VerifyOptionalNoCA && cc.OptionalErr):
		status = 495
	case mode == snapshot.VerifyOn && (cc == nil || !cc.Present):
		status = 496
	}
	if status == 0 {
		return true
	}
	x := &c.w.x
	x.loc = srv.Root
	// nginx drops keep-alive for these even when error_page answers.
	c.closeNext = true
	c.finalize(status)
	return false
}

// selectServer picks the virtual server by Host among those on the listening
// socket (ngx_http_find_virtual_server), falling back to the default server.
func (c *Conn) selectServer() *snapshot.Server {
	host := c.w.req.Host()
	if len(host) == 0 {
		return c.ln.Default
	}
	var capBuf []int
	if c.ln.NeedCaps {
		capBuf = c.w.x.hostCaps[:0]
	}
	idx, caps, ok := c.ln.Names.Match(host, capBuf)
	if caps != nil {
		c.w.x.hostCaps = caps
		c.w.x.hostSrc = append(c.w.x.hostSrc[:0], host...)
	} else {
		c.w.x.hostCaps = c.w.x.hostCaps[:0]
	}
	if !ok {
		return c.ln.Default
	}
	return c.ln.Servers[idx]
}

// route matches x.uri to a location and runs it.
func (c *Conn) route() {
	x := &c.w.x
	var capBuf []int
	if x.srv.NeedCaps {
		capBuf = x.caps[:0]
	}
	idx, caps, redirect, ok := x.srv.Locations.MatchRedirect(x.uri, capBuf)
	if ok && redirect {
		// "/api" for a proxied "/api/" location: 301 to "/api/"
		// (ngx_http_core_find_location's auto_redirect).
		x.scratch = append(x.scratch[:0], x.uri...)
		x.scratch = append(x.scratch, '/')
		if len(x.args) > 0 {
			x.scratch = append(x.scratch, '?')
			x.scratch = append(x.scratch, x.args...)
		}
		x.loc = x.srv.Locs[idx]
		c.sendRedirect(301, x.scratch)
		return
	}
	if ok {
		if caps != nil {
			x.caps = caps
		} else {
			x.caps = x.caps[:0]
		}
		x.capSrc = append(x.capSrc[:0], x.uri...)
		c.runLocation(x.srv.Locs[idx])
		return
	}
	x.caps = x.caps[:0]
	c.runLocation(x.srv.Root)
}

// internalRedirect restarts location matching with a new URI (which may
// carry "?args"), like ngx_http_internal_redirect.
func (c *Conn) internalRedirect(uri []byte) {
	x := &c.w.x
	x.redirects++
	if x.redirects > maxRedirects {
		// nginx: "rewrite or internal redirection cycle" -> 500.
		c.finalize(500)
		return
	}
	if q := bytes.IndexByte(uri, '?'); q >= 0 {
		x.args = append(x.args[:0], uri[q+1:]...)
		uri = uri[:q]
	}
	x.uri = append(x.uri[:0], uri...)
	x.internal = true
	c.route()
}

// runLocation is the content phase of one location.
func (c *Conn) runLocation(loc *snapshot.Location) {
	x := &c.w.x
	x.loc = loc
	c.keepalive = loc.KeepaliveTimeout
	c.sendTimeout = loc.SendTimeout
	c.bodyTO = loc.ClientBodyTimeout
	if c.requests >= loc.KeepaliveRequests || loc.KeepaliveTimeout == 0 {
		c.closeNext = true
	}
	if loc.Internal && !x.internal {
		c.finalize(404)
		return
	}
	if max := loc.ClientMaxBodySize; max > 0 && c.w.req.ContentLength() > max {
		// nginx checks client_max_body_size once the location is known
		// (ngx_http_core_find_config_handler) and answers 413 with close.
		c.finalize(413)
		return
	}
	if r := loc.Return; r != nil {
		// `return` runs in nginx's rewrite phase, before the preaccess
		// phase of limit_req/limit_conn: such a location is never limited
		// (checked against nginx 1.22).
		c.doReturn(r)
		return
	}
	if !x.internal && !x.errorPage && c.limits(loc) {
		return
	}
	if len(loc.Access) > 0 && !c.accessAllowed(loc) {
		// Access phase (after limit_req/limit_conn, before try_files and
		// the content handler; `return` ran earlier): 403.
		if c.errorLogOn(snapshot.LevelError) {
			x.errBuf = append(x.errBuf, "access forbidden by rule"...)
			c.errorLogEnd(nil)
		}
		c.finalize(403)
		return
	}
	if loc.StatusPage != snapshot.NoStatusPage {
		c.serveStatusPage(loc.StatusPage)
		return
	}
	if loc.Proxy != nil {
		c.call.cache.zone = nil
		if loc.Cache.Zone != nil && c.cacheLookup(loc) {
			return
		}
		c.startProxy(loc)
		return
	}
	if loc.Try != nil {
		c.tryFiles(loc.Try)
		return
	}
	c.serveStatic()
}

// doReturn implements `return` (ngx_http_rewrite_return_code_handler).
func (c *Conn) doReturn(r *snapshot.ReturnSpec) {
	x := &c.w.x
	if !r.Has {
		c.finalize(r.Code)
		return
	}
	x.scratch = c.eval(x.scratch[:0], &r.Text)
	if r.IsURL {
		c.sendRedirect(r.Code, x.scratch)
		return
	}
	x.status = r.Code
	c.writeSimple(r.Code, x.scratch, c.defaultTypeFor(loc(x)), false)
}

func loc(x *exchange) *snapshot.Location { return x.loc }

// tryFiles implements try_files (ngx_http_try_files_handler).
func (c *Conn) tryFiles(tf *snapshot.TryFiles) {
	x := &c.w.x
	loc := x.loc
	for i := range tf.Files {
		x.scratch = c.eval(x.scratch[:0], &tf.Files[i])
		name := x.scratch
		dir := len(name) > 0 && name[len(name)-1] == '/'
		x.path = c.mapPath(x.path[:0], loc, name)
		if dir {
			x.path = x.path[:len(x.path)-1]
		}
		f, err := c.snap.Files.Open(x.path)
		if err != nil {
			continue
		}
		if f.IsDir != dir {
			continue
		}
		if q := bytes.IndexByte(name, '?'); q >= 0 {
			x.args = append(x.args[:0], name[q+1:]...)
			name = name[:q]
		}
		x.uri = append(x.uri[:0], name...)
		c.serveStatic()
		return
	}
	switch {
	case tf.Code != 0:
		c.finalize(tf.Code)
	case tf.Named != nil:
		x.internal = true
		x.redirects++
		c.runLocation(tf.Named)
	default:
		x.scratch = c.eval(x.scratch[:0], &tf.URI)
		uri := append(x.path[:0], x.scratch...)
		c.internalRedirect(uri)
	}
}

// mapPath builds the filesystem path of uri in loc: root + uri, or alias
// replacing the location prefix (ngx_http_map_uri_to_path).
func (c *Conn) mapPath(dst []byte, loc *snapshot.Location, uri []byte) []byte {
	x := &c.w.x
	if loc.HasAlias {
		dst = c.eval(dst, &loc.Alias)
		x.docRoot = append(x.docRoot[:0], dst...)
		if loc.AliasRegex {
			// In a regex location the alias is the whole path.
			return dst
		}
		p := len(loc.Pattern)
		if p > len(uri) {
			p = len(uri)
		}
		return append(dst, uri[p:]...)
	}
	dst = c.eval(dst, &loc.Root)
	x.docRoot = append(x.docRoot[:0], dst...)
	return append(dst, uri...)
}

// serveStatic serves x.uri from the filesystem (ngx_http_index_module +
// ngx_http_static_module).
func (c *Conn) serveStatic() {
	x := &c.w.x
	loc := x.loc
	uri := x.uri
	if len(uri) > 0 && uri[len(uri)-1] == '/' {
		c.serveIndex()
		return
	}
	m := c.w.req.MethodID()
	if x.forceGET && m != http1.MethodHEAD {
		m = http1.MethodGET
	}
	if m != http1.MethodGET && m != http1.MethodHEAD && m != http1.MethodPOST {
		c.finalize(405)
		return
	}
	x.path = c.mapPath(x.path[:0], loc, uri)
	if loc.AnyStatic() && m != http1.MethodPOST && c.staticEncoded(loc) {
		return
	}
	f, err := c.snap.Files.Open(x.path)
	if err != nil {
		st := static.Status(err)
		c.logOpenError(x.path, err, st)
		c.finalize(st)
		return
	}
	if f.IsDir {
		// nginx redirects "/dir" to "/dir/" (ngx_http_static_handler).
		x.scratch = append(x.scratch[:0], uri...)
		x.scratch = append(x.scratch, '/')
		if len(x.args) > 0 {
			x.scratch = append(x.scratch, '?')
			x.scratch = append(x.scratch, x.args...)
		}
		c.sendRedirect(301, x.scratch)
		return
	}
	if m == http1.MethodPOST {
		c.finalize(405)
		return
	}
	c.sendFile(f)
}

// serveIndex handles a URI ending in "/": the first existing index file is
// an internal redirect; none -> 403 when the directory exists, else 404.
func (c *Conn) serveIndex() {
	x := &c.w.x
	loc := x.loc
	for i := range loc.Index {
		x.scratch = c.eval(x.scratch[:0], &loc.Index[i])
		name := x.scratch
		if len(name) > 0 && name[0] == '/' {
			// An absolute index is a redirect target as is (the last one
			// is used without a check, as in nginx).
			if i == len(loc.Index)-1 {
				c.internalRedirect(append(x.path[:0], name...))
				return
			}
		}
		x.path = c.mapPath(x.path[:0], loc, x.uri)
		x.path = append(x.path, name...)
		f, err := c.snap.Files.Open(x.path)
		if err != nil || f.IsDir {
			continue
		}
		uri := append(x.path[:0], x.uri...)
		uri = append(uri, name...)
		c.internalRedirect(uri)
		return
	}
	x.path = c.mapPath(x.path[:0], loc, x.uri)
	if len(x.path) > 1 {
		x.path = x.path[:len(x.path)-1]
	}
	f, err := c.snap.Files.Open(x.path)
	if err != nil {
		st := static.Status(err)
		if st == 404 && len(loc.Index) > 0 && loc.LogNotFound && c.errorLogOn(snapshot.LevelError) {
			x.errBuf = append(x.errBuf, '"')
			x.errBuf = append(x.errBuf, x.path...)
			x.errBuf = append(x.errBuf, '/')
			x.errBuf = append(x.errBuf, loc.Index[0].Raw...)
			x.errBuf = append(x.errBuf, "\" is not found "...)
			x.errBuf = appendErrno(x.errBuf, err)
			c.errorLogEnd(nil)
		}
		c.finalize(st)
		return
	}
	if !f.IsDir {
		c.finalize(404)
		return
	}
	// autoindex off: "directory index of ... is forbidden".
	if c.errorLogOn(snapshot.LevelError) {
		x.errBuf = append(x.errBuf, "directory index of \""...)
		x.errBuf = append(x.errBuf, x.path...)
		x.errBuf = append(x.errBuf, "/\" is forbidden"...)
		c.errorLogEnd(nil)
	}
	c.finalize(403)
}

// limits runs the preaccess phase (ngx_http_limit_conn_handler, then
// ngx_http_limit_req_handler) once per request. It returns true when the
// request was answered (rejected) or is delayed.
func (c *Conn) limits(loc *snapshot.Location) bool {
	// nginx runs limit_req before limit_conn (handlers of one phase run in
	// reverse module order), so a rejected or delayed request holds no
	// connection slot meanwhile.
	return c.limitRequests(loc) || c.limitConns(loc)
}

func (c *Conn) limitConns(loc *snapshot.Location) bool {
	l := &loc.Limits
	x := &c.w.x
	if len(l.Conn) == 0 || c.nConnTokens != 0 {
		return false
	}
	c.limitConn = limiter.ConnPassed
	for i := range l.Conn {
		cl := &l.Conn[i]
		x.scratch = c.eval(x.scratch[:0], cl.Key)
		ok, tok := cl.Zone.Acquire(x.scratch, cl.N)
		if !ok {
			if l.ConnDryRun {
				c.limitConn = limiter.ConnRejectedDryRun
				continue
			}
			c.limitConn = limiter.ConnRejected
			c.releaseConnLimits()
			c.finalize(l.ConnStatus)
			return true
		}
		if c.nConnTokens < len(c.connTokens) {
			c.connTokens[c.nConnTokens] = heldConn{cl.Zone, tok}
			c.nConnTokens++
		} else {
			cl.Zone.Release(tok)
		}
	}
	return false
}

func (c *Conn) limitRequests(loc *snapshot.Location) bool {
	l := &loc.Limits
	x := &c.w.x
	if len(l.Req) == 0 || c.limitDone {
		return false
	}
	// Keys are evaluated into one scratch buffer, then sliced: CheckReq
	// borrows them for the call only.
	var keys [8][]byte
	var ends [8]int
	n := len(l.Req)
	if n > len(keys) {
		n = len(keys)
	}
	x.scratch = x.scratch[:0]
	for i := 0; i < n; i++ {
		x.scratch = c.eval(x.scratch, l.ReqKeys[i])
		ends[i] = len(x.scratch)
	}
	start := 0
	for i := 0; i < n; i++ {
		keys[i] = x.scratch[start:ends[i]]
		start = ends[i]
	}
	d := limiter.CheckReq(l.Req[:n], keys[:n], monoMillis(), l.ReqDryRun)
	c.limitReq = d.Status
	switch d.Status {
	case limiter.ReqRejected:
		if c.errorLogOn(l.ReqLogLevel) {
			x.errBuf = append(x.errBuf, "limiting requests, excess: "...)
			x.errBuf = appendExcess(x.errBuf, d.Excess)
			x.errBuf = append(x.errBuf, " by zone \""...)
			x.errBuf = append(x.errBuf, d.Zone.Name()...)
			x.errBuf = append(x.errBuf, '"')
			c.errorLogEnd(nil)
		}
		c.finalize(l.ReqStatus)
		return true
	case limiter.ReqDelayed:
		wait := time.Duration(d.DelayMs) * time.Millisecond
		c.limitDone = true
		c.delayUntil = c.clock().Add(wait).UnixNano()
		c.phase = phaseDelayed
		c.deadline.Store(0)
		c.w.out = c.w.out[:x.outMark] // nothing of this request is sent yet
		c.t.WakeAfter(wait)
		return true
	}
	return false
}

// monoMillis is the limiter's clock (shared with fleet sync).
func monoMillis() int64 { return limiter.NowMillis() }

// appendExcess writes limit_req's excess (milli-requests) as nginx: "20.000".
func appendExcess(b []byte, e int64) []byte {
	b = strconv.AppendInt(b, e/1000, 10)
	r := e % 1000
	return append(b, '.', byte('0'+r/100), byte('0'+r/10%10), byte('0'+r%10))
}

// accessAllowed evaluates allow/deny in order (ngx_http_access_handler): the
// first matching rule decides; no match allows.
func (c *Conn) accessAllowed(loc *snapshot.Location) bool {
	var addr netip.Addr
	if c.remote.IsValid() {
		addr = c.remote.Addr().Unmap()
	}
	for i := range loc.Access {
		r := &loc.Access[i]
		switch {
		case r.All:
		case r.Unix:
			if addr.IsValid() {
				continue
			}
		default:
			if !addr.IsValid() || !r.Prefix.Contains(addr) {
				continue
			}
		}
		return !r.Deny
	}
	return true
}

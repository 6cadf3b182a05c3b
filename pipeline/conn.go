// Package pipeline is edgeproxy's request pipeline, written sans-IO: a Conn
// is fed the bytes a client sent and produces response bytes through a
// Transport. The gnet engine and the TLS listener are two transports of the
// same Conn, so routing, static files, error pages and headers exist once.
//
// Threading: every Conn method is called from the connection's owner
// goroutine only (its gnet event loop, or its TLS goroutine). Work that
// finishes elsewhere (sendfile) hands control back through Transport.
package pipeline

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"edgeproxy/http1"
	"edgeproxy/limiter"
	"edgeproxy/metrics"
	"edgeproxy/proxy"
	"edgeproxy/snapshot"
)

// Transport is what a Conn needs from the connection it serves. Methods are
// called on the owner goroutine.
type Transport interface {
	// WakeAfter makes the transport call Feed again with the buffered
	// input after d, even if nothing new arrives (limit_req delays).
	WakeAfter(d time.Duration)
	// Write sends bufs in order after anything written before. The
	// transport copies what it cannot send at once: the caller may reuse
	// the buffers when Write returns.
	Write(bufs [][]byte)
	// SendFile sends n bytes of f starting at off, after everything
	// written before, then closes f and calls Conn.SendDone on the owner
	// goroutine. The Conn feeds no more input until then.
	SendFile(f *os.File, off, n int64)
	// SendStream is SendFile for any reader: the transport copies r to the
	// client after everything written before, on a goroutine that blocks
	// on the client (back-pressure for the reader), then closes r if it
	// is an io.Closer and calls Conn.SendDone on the owner goroutine.
	SendStream(r io.Reader)
	// Close closes the connection once everything written is sent.
	Close()
	// Tunnel hands the connection over after a 101: from now on the
	// transport copies bytes between the client and up (first writing
	// early, what the app already sent) and closes both when either side
	// ends. The Conn is fed no more input.
	Tunnel(up net.Conn, early []byte)
}

// phase is where the connection is in its request cycle.
type phase uint8

const (
	phaseIdle     phase = iota // keep-alive: waiting for the first byte of a request
	phaseHead                  // reading a request head
	phaseBody                  // discarding a request body we do not need
	phaseSending               // a sendfile is in flight
	phaseDelayed               // limit_req delays the request at the front of the input
	phaseUpstream              // a proxied request is with the upstream
	phaseTunnel                // upgraded: the transport splices client and app
	phaseClosing               // the response said close: ignore further input
)

// Conn is the per-connection state of the pipeline. Its zero value is not
// usable: create it with NewConn.
type Conn struct {
	t        Transport
	src      *Source
	snap     *snapshot.Snapshot
	ln       *snapshot.Listener
	remote   netip.AddrPort
	local    netip.AddrPort
	tls      bool
	id       uint64
	requests int

	phase     phase
	closeNext bool // close after the response in progress
	bodyLeft  int64
	chunked   bool
	chunk     http1.ChunkedDecoder
	bodyTO    time.Duration

	// w holds the buffers of the request being served. It is taken from a
	// pool when input arrives and given back when Feed returns, so an idle
	// keep-alive connection costs only the Conn itself (nginx likewise
	// frees its request buffers on idle connections).
	w *work

	// Rate and connection limiting state of the current request. It lives
	// in the Conn, not the pooled work, because a delayed request is
	// re-parsed when its delay ends and a limit_conn slot is held until the
	// response is sent (a sendfile may outlive Feed).
	limitReq    limiter.ReqStatus
	limitConn   limiter.ConnStatus
	limitDone   bool  // limit_req already decided for the head at the front of the input
	delayUntil  int64 // unix nanoseconds; phaseDelayed ends then
	connTokens  [4]heldConn
	nConnTokens int

	reqStart   time.Time // first byte of the current request ($request_time)
	now        time.Time // read once per Feed (zero outside Feed)
	tlSec      int64     // second cached in tlBuf/isoBuf
	tlBuf      []byte    // $time_local of tlSec
	isoBuf     []byte    // $time_iso8601 of tlSec
	reqBodyLen int64
	pipelined  bool // the current request followed another in the same read ($pipe)
	pendingLog []pendingLine
	pendingBuf []byte

	tlsProto, tlsCipher, tlsSNI string // $ssl_protocol, $ssl_cipher, $ssl_server_name
	tlsReused                   bool   // $ssl_session_reused
	clientCert                  *snapshot.ClientCert

	call       upstreamCall
	proxying   bool // call holds a job (collecting its body or in flight)
	collecting bool // the request body is being read into call.job.Body

	keepalive   time.Duration // keepalive_timeout of the last request's location
	sendTimeout time.Duration // send_timeout of the current request's location

	// mshard and mstate place the connection in the stub_status and
	// Prometheus connection counters (package metrics).
	mshard int
	mstate metrics.State

	// deadline is the unix-nano time at which the connection times out in
	// its current phase (0: none). Written on the owner goroutine, read by
	// the transport's timer sweep from another goroutine.
	deadline atomic.Int64
}

var connIDs atomic.Uint64

// NewConn creates the pipeline state of an accepted connection. remote and
// local are the socket addresses (zero for unix sockets); isTLS selects
// $scheme https.
func NewConn(t Transport, snap *snapshot.Snapshot, ln *snapshot.Listener, remote, local netip.AddrPort, isTLS bool) *Conn {
	c := NewConnCounted(t, snap, ln, remote, local, isTLS)
	metrics.ConnOpened(c.mshard)
	return c
}

// NewConnCounted is NewConn for a transport that already counted the
// connection as accepted and active (metrics.ConnOpened) when it accepted
// it: the TLS listener does, so a connection in its handshake is active, as
// in nginx.
func NewConnCounted(t Transport, snap *snapshot.Snapshot, ln *snapshot.Listener, remote, local netip.AddrPort, isTLS bool) *Conn {
	c := &Conn{t: t, snap: snap, ln: ln, remote: remote, local: local, tls: isTLS, id: connIDs.Add(1)}
	c.mshard = metrics.ShardOf(c.id)
	c.sendTimeout = 60 * time.Second
	c.setDeadline(ln.Default.HeaderLims.ClientHeaderTimeout)
	return c
}

// Deadline returns when the connection times out (unix nanoseconds, 0 =
// never). Any goroutine may call it.
func (c *Conn) Deadline() int64 { return c.deadline.Load() }

func (c *Conn) setDeadline(d time.Duration) {
	if d <= 0 {
		c.deadline.Store(0)
		return
	}
	c.deadline.Store(c.clock().Add(d).UnixNano())
}

// Expired reports whether the current phase has timed out at now; the
// transport then closes the connection without a response, as nginx does for
// client_header_timeout, keepalive_timeout and client_body_timeout (it logs
// 408 but sends nothing). Owner goroutine only.
func (c *Conn) Expired(now int64) bool {
	d := c.deadline.Load()
	return d != 0 && now >= d && c.phase != phaseSending && c.phase != phaseDelayed
}

// Busy reports whether the connection waits for a sendfile to finish.
func (c *Conn) Busy() bool { return c.phase == phaseSending }

// Closing reports whether the connection has answered its last request.
func (c *Conn) Closing() bool { return c.phase == phaseClosing }

// SendDone is called by the transport on the owner goroutine when a
// SendFile has finished. ok=false means the client went away.
func (c *Conn) SendDone(ok bool) {
	if c.phase != phaseSending {
		return
	}
	c.flushPendingLog()
	if !ok {
		c.phase = phaseClosing
		c.t.Close()
		return
	}
	if c.ensureWork() {
		defer func() { putWork(c.w); c.w = nil }()
	}
	c.afterResponse()
	c.flush()
}

// Feed gives the Conn the unconsumed input and returns how many bytes it
// consumed. Bytes not consumed must be offered again (with more appended)
// on the next call. data may be a borrowed buffer: nothing in it is retained
// after Feed returns.
func (c *Conn) Feed(data []byte) int {
	// One clock read per batch of input, like nginx's cached time per
	// event-loop iteration.
	c.now = time.Now()
	if c.w == nil {
		c.w = getWork()
	}
	n := c.feed(data)
	c.flush()
	c.now = time.Time{}
	if !c.proxying {
		// A proxied request keeps its work (the rebased head, the
		// exchange) until the response is written.
		putWork(c.w)
		c.w = nil
	}
	return n
}

// work is the pooled per-request state.
type work struct {
	headCopy []byte // the request head, owned, while a proxied request is in flight
	req      http1.Request
	x        exchange
	out      []byte
	iov      [][]byte
}

var workPool = sync.Pool{New: func() any {
	w := &work{out: make([]byte, 0, 4096), iov: make([][]byte, 0, 4)}
	w.x.init()
	return w
}}

func getWork() *work { return workPool.Get().(*work) }

func putWork(w *work) {
	if cap(w.out) > 64<<10 {
		w.out = make([]byte, 0, 4096)
	}
	workPool.Put(w)
}

// noWork stands in when no request is being served (SendDone after a
// sendfile): flushing it writes nothing.
func (c *Conn) ensureWork() bool {
	if c.w != nil {
		return false
	}
	c.w = getWork()
	return true
}

func (c *Conn) feed(data []byte) int {
	off := 0
	if c.phase == phaseUpstream && c.callReady() {
		// The worker finished (the transport woke us, maybe with no new
		// input): write the response before reading further.
		if !c.resumeProxy() {
			return 0
		}
	}
	for off < len(data) {
		switch c.phase {
		case phaseClosing:
			return len(data)
		case phaseTunnel:
			return 0
		case phaseSending:
			return off
		case phaseUpstream:
			if c.callReady() {
				if !c.resumeProxy() {
					return off
				}
				continue
			}
			if c.collecting && (c.bodyLeft > 0 || c.chunked) {
				// proxy_request_buffering off: the body goes to the app
				// while the exchange runs.
				n := c.discardBody(data[off:])
				off += n
				if n == 0 || c.phase != phaseUpstream {
					return off
				}
				continue
			}
			return off
		case phaseDelayed:
			if c.clock().UnixNano() < c.delayUntil {
				return off
			}
			c.phase = phaseHead
			continue
		case phaseIdle:
			c.refresh()
			if c.src != nil && c.src.Draining() {
				c.closeNext = true
			}
			c.phase = phaseHead
			c.setMState(metrics.Reading)
			metrics.RequestStarted(c.mshard)
			c.reqStart = c.clock()
			c.pipelined = off > 0
			c.setDeadline(c.ln.Default.HeaderLims.ClientHeaderTimeout)
			fallthrough
		case phaseHead:
			n, ok := c.readHead(data[off:])
			off += n
			if !ok {
				return off
			}
		case phaseBody:
			off += c.discardBody(data[off:])
		}
	}
	return off
}

// readHead parses one request head and serves it. ok=false means more input
// is needed (or the connection is closing).
func (c *Conn) readHead(data []byte) (int, bool) {
	srvDefault := c.ln.Default
	lims := &c.w.x.lims
	hl := &srvDefault.HeaderLims
	lims.HeaderBufferSize, lims.LargeBufferSize, lims.LargeBuffers = hl.ClientHeaderBufferSize, hl.LargeBufferSize, hl.LargeBuffers
	lims.KeepInvalidHeaders, lims.UnderscoresInHeaders = !hl.IgnoreInvalidHeaders, hl.UnderscoresInHeaders
	c.w.req.Reset()
	n, err := c.w.req.Parse(data, lims)
	if err == http1.ErrNeedMore {
		return 0, false
	}
	c.setMState(metrics.Writing)
	c.requests++
	if err != nil {
		status := 400
		if he, ok := err.(*http1.Error); ok {
			status = he.Status
			if he.Page != 0 {
				status = he.Page // 494: "400 Request Header Or Cookie Too Large"
			}
		}
		c.w.x.reset(c, srvDefault)
		c.w.x.badRequest = true
		c.closeNext = true
		c.w.x.loc = srvDefault.Root
		c.finalize(status)
		c.logRequest(false)
		c.phase = phaseClosing
		c.flush()
		c.t.Close()
		return len(data), false
	}
	if c.w.req.Chunked() && !chunkedValid(data[n:]) {
		// nginx discards the body before answering when it is already
		// here, and a malformed one is a 400 with close
		// (ngx_http_discard_request_body -> ngx_http_parse_chunked).
		c.w.x.reset(c, srvDefault)
		c.w.x.badRequest = true
		c.closeNext = true
		c.finalize(400)
		c.phase = phaseClosing
		c.flush()
		c.t.Close()
		return len(data), false
	}
	c.reqBodyLen = 0
	if cl := c.w.req.ContentLength(); cl > 0 {
		c.reqBodyLen = cl
	}
	c.serve()
	c.logAfterServe()
	if c.phase == phaseDelayed {
		// limit_req delays this request: leave its bytes unconsumed; they
		// are parsed again (without a second limit check) when the delay
		// ends and the transport wakes the connection.
		c.requests--
		return 0, false
	}
	c.limitDone = false
	// Body framing: everything edgeproxy serves today ignores the request
	// body, so it is read and discarded (ngx_http_discard_request_body).
	c.bodyLeft, c.chunked = 0, false
	if c.w.req.Chunked() {
		c.chunked = true
		c.chunk = http1.ChunkedDecoder{}
	} else if cl := c.w.req.ContentLength(); cl > 0 {
		c.bodyLeft = cl
	}
	if c.phase == phaseClosing {
		return n, false
	}
	if c.phase == phaseUpstream {
		return n, true
	}
	if c.chunked || c.bodyLeft > 0 {
		if c.phase != phaseSending {
			c.phase = phaseBody
			c.setDeadline(c.bodyTO)
		}
		return n, true
	}
	if c.phase != phaseSending {
		c.afterResponse()
	}
	return n, true
}

// discardBody consumes request body bytes.
func (c *Conn) discardBody(data []byte) int {
	if !c.chunked {
		n := int64(len(data))
		if n > c.bodyLeft {
			n = c.bodyLeft
		}
		if c.collecting && !c.spoolBody(data[:n]) {
			c.bodyFailed(500)
			return len(data)
		}
		c.bodyLeft -= n
		if c.bodyLeft == 0 {
			c.bodyDone()
		} else {
			c.setDeadline(c.bodyTO)
		}
		return int(n)
	}
	off := 0
	for off < len(data) {
		n, chunk, done, err := c.chunk.Decode(data[off:])
		off += n
		if c.collecting && err == nil {
			job := c.call.job
			if max := c.call.loc.ClientMaxBodySize; max > 0 && job.ReqBody.Len()+int64(len(chunk)) > max {
				// A chunked body over client_max_body_size: 413, as nginx
				// answers while reading it.
				c.bodyFailed(413)
				return len(data)
			}
			if !c.spoolBody(chunk) {
				c.bodyFailed(500)
				return len(data)
			}
		}
		if err != nil {
			c.phase = phaseClosing
			c.flush()
			c.t.Close()
			return len(data)
		}
		if done {
			c.chunked = false
			c.bodyDone()
			return off
		}
		if n == 0 {
			break
		}
	}
	c.setDeadline(c.bodyTO)
	return off
}

func (c *Conn) bodyDone() {
	if c.collecting {
		c.endBody()
		return
	}
	if c.phase == phaseBody {
		c.afterResponse()
	}
}

// bodyFailed answers status while a proxied request body is being read
// (413 for a chunked body over client_max_body_size, 500 when the
// temporary file cannot be written) and closes the connection, since the
// rest of the body is not read. A worker already streaming the body is
// stopped first.
func (c *Conn) bodyFailed(status int) {
	if c.call.dispatched {
		// proxy_request_buffering off: the app has part of the body.
		c.abandonCall()
		c.closeNext = true
		c.phase = phaseClosing
		c.flush()
		c.t.Close()
		return
	}
	c.collecting, c.proxying = false, false
	proxy.ReleaseJob(c.call.job)
	c.call.job = nil
	c.closeNext = true
	c.finalize(status)
	c.phase = phaseClosing
	c.flush()
	c.t.Close()
}

// afterResponse moves to the next request or closes.
func (c *Conn) afterResponse() {
	if c.chunked || c.bodyLeft > 0 {
		// The response went out (sendfile finished) but the body is still
		// arriving: keep discarding it.
		c.phase = phaseBody
		c.setDeadline(c.bodyTO)
		return
	}
	c.releaseConnLimits()
	if c.closeNext {
		c.phase = phaseClosing
		c.flush()
		c.t.Close()
		return
	}
	c.phase = phaseIdle
	c.setMState(metrics.Waiting)
	c.setDeadline(c.keepalive)
}

// setMState moves the connection between stub_status's states.
func (c *Conn) setMState(s metrics.State) {
	if c.mstate != s && c.mstate != metrics.Gone {
		metrics.Transition(c.mshard, c.mstate, s)
		c.mstate = s
	}
}

// flush writes the accumulated output.
func (c *Conn) flush() {
	if len(c.w.out) == 0 && len(c.w.iov) == 0 {
		return
	}
	if len(c.w.out) > 0 {
		c.w.iov = append(c.w.iov, c.w.out)
	}
	c.t.Write(c.w.iov)
	for i := range c.w.iov {
		c.w.iov[i] = nil
	}
	c.w.iov = c.w.iov[:0]
	c.w.out = c.w.out[:0]
}

// writeBody queues a large in-memory body without copying it: the pending
// output is flushed first so the order is kept.
func (c *Conn) writeBody(b []byte) {
	c.w.x.bodySent += int64(len(b))
	c.writeBodyRaw(b)
}

// writeBodyRaw queues body bytes without accounting them.
func (c *Conn) writeBodyRaw(b []byte) {
	if len(b) <= 16<<10 {
		c.w.out = append(c.w.out, b...)
		return
	}
	c.w.iov = append(c.w.iov, c.w.out, b)
	c.t.Write(c.w.iov)
	for i := range c.w.iov {
		c.w.iov[i] = nil
	}
	c.w.iov = c.w.iov[:0]
	c.w.out = c.w.out[:0]
}

// Closed tells the Conn its connection is gone, so it releases what the
// request in progress holds (limit_conn slots). Owner goroutine only.
func (c *Conn) Closed() {
	c.setMState(metrics.Gone)
	c.releaseConnLimits()
	c.abandonCall()
	if c.w != nil {
		putWork(c.w)
		c.w = nil
	}
}

func (c *Conn) releaseConnLimits() {
	for i := 0; i < c.nConnTokens; i++ {
		c.connTokens[i].z.Release(c.connTokens[i].t)
		c.connTokens[i] = heldConn{}
	}
	c.nConnTokens = 0
}

// SendTimeout is send_timeout of the location serving the current request.
func (c *Conn) SendTimeout() time.Duration { return c.sendTimeout }

// chunkedValid reports whether the chunked body bytes already received are
// well-formed so far.
func chunkedValid(b []byte) bool {
	var d http1.ChunkedDecoder
	for len(b) > 0 {
		n, _, done, err := d.Decode(b)
		if err != nil {
			return false
		}
		if done || n == 0 {
			return true
		}
		b = b[n:]
	}
	return true
}

// heldConn is a limit_conn slot held by the request in progress.
type heldConn struct {
	z *limiter.ConnZone
	t limiter.ConnToken
}

// resumeProxy writes a finished upstream response and moves on; false means
// the connection cannot read further yet (re-dispatched, sending, closing).
func (c *Conn) resumeProxy() bool {
	c.phase = phaseHead
	c.finishProxy()
	c.logAfterServe()
	switch c.phase {
	case phaseUpstream, phaseClosing, phaseSending:
		return false
	}
	if c.collecting {
		c.phase = phaseBody
		return true
	}
	c.afterResponse()
	return c.phase != phaseClosing
}

// logAfterServe writes the access log of a request that has been answered
// (or prepares it, when a sendfile is still running).
func (c *Conn) logAfterServe() {
	switch {
	case c.phase == phaseDelayed, c.phase == phaseUpstream, c.proxying:
		return // not answered yet
	case c.phase == phaseSending:
		c.logRequest(true)
	default:
		c.logRequest(false)
	}
}

// clock returns the time read at the start of this Feed (or now, outside).
func (c *Conn) clock() time.Time {
	if c.now.IsZero() {
		return time.Now()
	}
	return c.now
}

// appendLocalTime appends $time_local or $time_iso8601, formatted once per
// second per connection (no allocation, no shared state).
func (c *Conn) appendLocalTime(dst []byte, iso bool) []byte {
	now := c.clock()
	if sec := now.Unix(); sec != c.tlSec || c.tlBuf == nil {
		c.tlSec = sec
		c.tlBuf = now.AppendFormat(c.tlBuf[:0], "02/Jan/2006:15:04:05 -0700")
		c.isoBuf = now.AppendFormat(c.isoBuf[:0], "2006-01-02T15:04:05-07:00")
	}
	if iso {
		return append(dst, c.isoBuf...)
	}
	return append(dst, c.tlBuf...)
}

// SetTLS records the negotiated TLS parameters for $ssl_protocol,
// $ssl_cipher, $ssl_server_name and $ssl_session_reused. Owner goroutine,
// before Feed.
func (c *Conn) SetTLS(proto, cipher, sni string, reused bool) {
	c.tlsProto, c.tlsCipher, c.tlsSNI, c.tlsReused = proto, cipher, sni, reused
}

// SetClientCert records the client certificate and its verification
// (ssl_verify_client): the $ssl_client_* variables, and the 400 answered
// to every request when the server requires a valid certificate. Owner
// goroutine, before Feed.
func (c *Conn) SetClientCert(cc *snapshot.ClientCert) { c.clientCert = cc }

// Source is the current snapshot, swapped atomically by a reload. A Conn
// with a Source picks up a new snapshot when its next request starts, so a
// request in flight finishes on the configuration it started with.
type Source struct {
	p        atomic.Pointer[snapshot.Snapshot]
	draining atomic.Bool
}

// Drain makes every connection answer its next request with
// "Connection: close" (graceful stop). Any goroutine.
func (s *Source) Drain() { s.draining.Store(true) }

// Draining reports whether a graceful stop is under way.
func (s *Source) Draining() bool { return s.draining.Load() }

// NewSource returns a Source holding s.
func NewSource(s *snapshot.Snapshot) *Source {
	src := &Source{}
	src.p.Store(s)
	return src
}

// Load returns the current snapshot. Any goroutine.
func (s *Source) Load() *snapshot.Snapshot { return s.p.Load() }

// Store installs a new snapshot. Any goroutine.
func (s *Source) Store(snap *snapshot.Snapshot) { s.p.Store(snap) }

// SetSource makes the Conn follow src across reloads. Owner goroutine,
// before Feed.
func (c *Conn) SetSource(src *Source) { c.src = src }

// refresh switches to the current snapshot between requests.
func (c *Conn) refresh() {
	if c.src == nil {
		return
	}
	s := c.src.Load()
	if s == c.snap {
		return
	}
	if l := s.Listener(c.ln.Network, c.ln.Addr); l != nil {
		c.snap, c.ln = s, l
	}
}

// Idle reports whether the connection is between requests with nothing
// in progress (a graceful stop may close it). Owner goroutine.
func (c *Conn) Idle() bool { return c.phase == phaseIdle && !c.proxying }

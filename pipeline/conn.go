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
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"edgeproxy/http1"
	"edgeproxy/snapshot"
)

// Transport is what a Conn needs from the connection it serves. Methods are
// called on the owner goroutine.
type Transport interface {
	// Write sends bufs in order after anything written before. The
	// transport copies what it cannot send at once: the caller may reuse
	// the buffers when Write returns.
	Write(bufs [][]byte)
	// SendFile sends n bytes of f starting at off, after everything
	// written before, then closes f and calls Conn.SendDone on the owner
	// goroutine. The Conn feeds no more input until then.
	SendFile(f *os.File, off, n int64)
	// Close closes the connection once everything written is sent.
	Close()
}

// phase is where the connection is in its request cycle.
type phase uint8

const (
	phaseIdle    phase = iota // keep-alive: waiting for the first byte of a request
	phaseHead                 // reading a request head
	phaseBody                 // discarding a request body we do not need
	phaseSending              // a sendfile is in flight
	phaseClosing              // the response said close: ignore further input
)

// Conn is the per-connection state of the pipeline. Its zero value is not
// usable: create it with NewConn.
type Conn struct {
	t        Transport
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

	req http1.Request
	x   exchange
	out []byte
	iov [][]byte

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
	c := &Conn{t: t, snap: snap, ln: ln, remote: remote, local: local, tls: isTLS, id: connIDs.Add(1)}
	c.out = make([]byte, 0, 4096)
	c.iov = make([][]byte, 0, 4)
	c.x.init()
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
	c.deadline.Store(time.Now().Add(d).UnixNano())
}

// Expired reports whether the current phase has timed out at now; the
// transport then closes the connection without a response, as nginx does for
// client_header_timeout, keepalive_timeout and client_body_timeout (it logs
// 408 but sends nothing). Owner goroutine only.
func (c *Conn) Expired(now int64) bool {
	d := c.deadline.Load()
	return d != 0 && now >= d && c.phase != phaseSending
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
	if !ok {
		c.phase = phaseClosing
		c.t.Close()
		return
	}
	c.afterResponse()
}

// Feed gives the Conn the unconsumed input and returns how many bytes it
// consumed. Bytes not consumed must be offered again (with more appended)
// on the next call. data may be a borrowed buffer: nothing in it is retained
// after Feed returns.
func (c *Conn) Feed(data []byte) int {
	off := 0
	for off < len(data) {
		switch c.phase {
		case phaseClosing:
			return len(data)
		case phaseSending:
			c.flush()
			return off
		case phaseIdle:
			c.phase = phaseHead
			c.setDeadline(c.ln.Default.HeaderLims.ClientHeaderTimeout)
			fallthrough
		case phaseHead:
			n, ok := c.readHead(data[off:])
			off += n
			if !ok {
				c.flush()
				return off
			}
		case phaseBody:
			off += c.discardBody(data[off:])
		}
	}
	c.flush()
	return off
}

// readHead parses one request head and serves it. ok=false means more input
// is needed (or the connection is closing).
func (c *Conn) readHead(data []byte) (int, bool) {
	srvDefault := c.ln.Default
	lims := &c.x.lims
	hl := &srvDefault.HeaderLims
	lims.HeaderBufferSize, lims.LargeBufferSize, lims.LargeBuffers = hl.ClientHeaderBufferSize, hl.LargeBufferSize, hl.LargeBuffers
	lims.IgnoreInvalidHeaders, lims.UnderscoresInHeaders, lims.MergeSlashes = hl.IgnoreInvalidHeaders, hl.UnderscoresInHeaders, hl.MergeSlashes
	c.req.Reset()
	n, err := c.req.Parse(data, lims)
	if err == http1.ErrNeedMore {
		return 0, false
	}
	c.requests++
	if err != nil {
		status := 400
		if he, ok := err.(*http1.Error); ok {
			status = he.Status
		}
		c.x.reset(c, srvDefault)
		c.x.badRequest = true
		c.closeNext = true
		c.x.loc = srvDefault.Root
		c.finalize(status)
		c.phase = phaseClosing
		c.flush()
		c.t.Close()
		return len(data), false
	}
	c.serve()
	// Body framing: everything edgeproxy serves today ignores the request
	// body, so it is read and discarded (ngx_http_discard_request_body).
	c.bodyLeft, c.chunked = 0, false
	if c.req.Chunked() {
		c.chunked = true
		c.chunk = http1.ChunkedDecoder{}
	} else if cl := c.req.ContentLength(); cl > 0 {
		c.bodyLeft = cl
	}
	if c.phase == phaseClosing {
		return n, false
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
		n, _, done, err := c.chunk.Decode(data[off:])
		off += n
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
	if c.phase == phaseBody {
		c.afterResponse()
	}
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
	if c.closeNext {
		c.phase = phaseClosing
		c.flush()
		c.t.Close()
		return
	}
	c.phase = phaseIdle
	c.setDeadline(c.x.keepalive)
}

// flush writes the accumulated output.
func (c *Conn) flush() {
	if len(c.out) == 0 && len(c.iov) == 0 {
		return
	}
	if len(c.out) > 0 {
		c.iov = append(c.iov, c.out)
	}
	c.t.Write(c.iov)
	for i := range c.iov {
		c.iov[i] = nil
	}
	c.iov = c.iov[:0]
	c.out = c.out[:0]
}

// writeBody queues a large in-memory body without copying it: the pending
// output is flushed first so the order is kept.
func (c *Conn) writeBody(b []byte) {
	if len(b) <= 16<<10 {
		c.out = append(c.out, b...)
		return
	}
	c.iov = append(c.iov, c.out, b)
	c.t.Write(c.iov)
	for i := range c.iov {
		c.iov[i] = nil
	}
	c.iov = c.iov[:0]
	c.out = c.out[:0]
}

// SendTimeout is send_timeout of the location serving the current request.
func (c *Conn) SendTimeout() time.Duration {
	if c.x.loc == nil {
		return 60 * time.Second
	}
	return c.x.loc.SendTimeout
}

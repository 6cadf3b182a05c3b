// Package engine runs the request pipeline on gnet event loops. It owns
// everything gnet-specific: accepting, reading borrowed buffers, writing,
// the timer sweep gnet lacks, close-after-flush, and sendfile beside gnet on a
// dup'd descriptor. The pipeline itself knows nothing about gnet.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"edgeproxy/metrics"
	"edgeproxy/pipeline"
	"edgeproxy/snapshot"
)

// Options are the transport tunables (see package tuning for the flags).
type Options struct {
	Loops          int // 0: snapshot's worker_processes
	ReadBufferCap  int
	WriteBufferCap int
	SocketRecvBuf  int
	SocketSendBuf  int
	NoDelay        bool
	KeepAlive      time.Duration // TCP keepalive idle; 0 = off
	KeepInterval   time.Duration
	KeepCount      int
	ReusePort      bool
	LockOSThread   bool
	// Inherited are listening sockets handed over by the old binary in a
	// binary upgrade, by Key; New takes (and deletes) those it serves.
	Inherited map[string]int
	// CPUAffinity pins the event loops to CPUs (worker_cpu_affinity): the
	// n-th loop to the n-th set. Empty: no pinning.
	CPUAffinity []CPUSet
	// MaxInbound caps what a connection may have buffered but unconsumed
	// (gnet has no back-pressure): past it the connection is closed.
	MaxInbound int
	Logger     *log.Logger
}

// Engine serves one snapshot on gnet. Create with New, run with Run.
type Engine struct {
	opt  Options
	snap *snapshot.Snapshot // the snapshot the engine started with (listeners)
	src  *pipeline.Source

	// Listening sockets (listeners.go): groups of gnet engines, the live
	// listeners by Key. lmu serialises Run, Update, Drain and Stop.
	lmu     sync.Mutex
	initial []*lstate
	groups  []*group
	live    map[string]*lstate
	fatal   chan error // a group's gnet engine ended on its own

	maxConns int64
	active   atomic.Int64

	mu    sync.Mutex
	conns map[*gconn]struct{}
	// waiting holds connections whose output must drain before they can
	// close or start a sendfile; gnet has no "drained" event, so they are
	// polled (woken) every few milliseconds.
	waiting map[*gconn]struct{}

	stop    chan struct{}
	kick    chan struct{}
	stopped sync.Once
	ready   chan struct{}
	pinned  atomic.Int32 // loops pinned so far (worker_cpu_affinity)
}

// New prepares an engine for snap.
func New(snap *snapshot.Snapshot, opt Options) *Engine {
	e := &Engine{opt: opt, snap: snap, src: pipeline.NewSource(snap),
		live: map[string]*lstate{}, fatal: make(chan error, 1),
		conns: map[*gconn]struct{}{}, waiting: map[*gconn]struct{}{},
		stop: make(chan struct{}), ready: make(chan struct{}), kick: make(chan struct{}, 1)}
	if e.opt.Loops <= 0 {
		e.opt.Loops = snap.Loops
	}
	if e.opt.MaxInbound <= 0 {
		e.opt.MaxInbound = 4 << 20
	}
	if e.opt.Logger == nil {
		e.opt.Logger = log.New(os.Stderr, "", log.LstdFlags)
	}
	e.maxConns = int64(snap.WorkerConnections) * int64(e.opt.Loops)
	for _, l := range snap.Listeners {
		if l.SSL {
			continue // served by tlsterm
		}
		ls := &lstate{key: Key(l), l: l, inherit: -1}
		if fd, ok := opt.Inherited[ls.key]; ok {
			ls.inherit = fd
			delete(opt.Inherited, ls.key)
		}
		e.initial = append(e.initial, ls)
	}
	return e
}

// Run serves until Stop; it returns gnet's error, if any.
func (e *Engine) Run() error {
	go e.sweeper()
	e.lmu.Lock()
	if len(e.initial) > 0 {
		g := e.newGroup(e.initial)
		if err := g.start(e.gnetOptions(e.initial)); err != nil {
			e.lmu.Unlock()
			e.stopped.Do(func() { close(e.stop) })
			return fmt.Errorf("listening on %s: %v", strings.Join(g.addrs(), ", "), err)
		}
		e.groups = append(e.groups, g)
		for _, ls := range e.initial {
			e.live[ls.key] = ls
		}
		g.release <- true
	}
	e.lmu.Unlock()
	close(e.ready)
	select {
	case <-e.stop:
		return nil
	case err := <-e.fatal:
		e.stopped.Do(func() { close(e.stop) })
		return err
	}
}

// gnetOptions are the gnet options for a group serving lns.
func (e *Engine) gnetOptions(lns []*lstate) []gnet.Option {
	reuse := e.opt.ReusePort
	for _, ls := range lns {
		if ls.l.ReusePort {
			reuse = true
		}
	}
	nodelay := gnet.TCPDelay
	if e.opt.NoDelay && e.snap.TCPNoDelay {
		nodelay = gnet.TCPNoDelay
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(e.opt.Loops),
		gnet.WithReuseAddr(true),
		gnet.WithReusePort(reuse),
		gnet.WithTCPNoDelay(nodelay),
		gnet.WithLockOSThread(e.opt.LockOSThread || len(e.opt.CPUAffinity) > 0),
		gnet.WithLogLevel(4), // errors only
	}
	if e.opt.ReadBufferCap > 0 {
		opts = append(opts, gnet.WithReadBufferCap(e.opt.ReadBufferCap))
	}
	if e.opt.WriteBufferCap > 0 {
		opts = append(opts, gnet.WithWriteBufferCap(e.opt.WriteBufferCap))
	}
	if e.opt.SocketRecvBuf > 0 {
		opts = append(opts, gnet.WithSocketRecvBuffer(e.opt.SocketRecvBuf))
	}
	if e.opt.SocketSendBuf > 0 {
		opts = append(opts, gnet.WithSocketSendBuffer(e.opt.SocketSendBuf))
	}
	if e.opt.KeepAlive > 0 {
		opts = append(opts, gnet.WithTCPKeepAlive(e.opt.KeepAlive))
		if e.opt.KeepInterval > 0 {
			opts = append(opts, gnet.WithTCPKeepInterval(e.opt.KeepInterval))
		}
		if e.opt.KeepCount > 0 {
			opts = append(opts, gnet.WithTCPKeepCount(e.opt.KeepCount))
		}
	}
	return opts
}

// Ready is closed once the listeners accept connections.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Stop closes the listeners and every connection.
func (e *Engine) Stop(ctx context.Context) error {
	select {
	case <-e.ready:
	case <-e.stop: // Run failed
	}
	e.stopped.Do(func() { close(e.stop) })
	e.lmu.Lock()
	groups := append([]*group(nil), e.groups...)
	e.lmu.Unlock()
	for _, g := range groups {
		g.stop(ctx)
	}
	return ctx.Err()
}

// gconn is the per-connection state: the pipeline Conn and the gnet side of
// the Transport. Fields are touched on the owner loop only, except the
// atomics.
type gconn struct {
	e  *Engine
	c  gnet.Conn
	pc *pipeline.Conn

	ls *lstate // the listener it came through

	closing     bool // close once output is drained
	closed      bool
	fed         bool  // some input was consumed: no longer a fresh connection
	opened      int64 // UnixNano of the accept
	drainSet    bool  // switched to its removed listener's draining source
	waitingFlag bool
	waitSince   time.Time
	lastOut     int

	tun   net.Conn    // upgraded: the app connection spliced with this one
	tunCh chan []byte // client bytes for the writer goroutine

	sendR     io.Reader    // a SendFile/SendStream waiting for the output to drain
	sendState atomic.Int32 // 0 idle, 1 running, 2 done ok, 3 done failed
}

// Source is the engine's current snapshot; main swaps it on reload.
func (e *Engine) Source() *pipeline.Source { return e.src }

// OnOpen attaches pipeline state to a connection accepted on ls; past
// worker_connections it is closed at once, as nginx does when it runs out of
// connections. A connection accepted just before a graceful stop or a
// listener's removal is still served (its request gets "Connection: close"):
// by then no new one can be accepted (see retire), and closing it would
// fail a request that reached the server.
func (e *Engine) OnOpen(c gnet.Conn, ls *lstate) ([]byte, gnet.Action) {
	if ls == nil {
		return nil, gnet.Close
	}
	if e.active.Add(1) > e.maxConns {
		e.active.Add(-1)
		metrics.ConnRefused(0) // accepted, not handled (stub_status)
		return nil, gnet.Close
	}
	l := ls.l
	if cur := e.src.Load().Listener(l.Network, l.Addr); cur != nil {
		l = cur
	}
	e.pinLoop(c)
	g := &gconn{e: e, c: c, ls: ls, opened: time.Now().UnixNano()}
	var remote, local netip.AddrPort
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		remote = a.AddrPort()
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		local = a.AddrPort()
	} else if ls.standIn != "" {
		// An inherited socket: gnet reports the stand-in's address.
		local, _ = netip.ParseAddrPort(l.Addr)
	}
	g.pc = pipeline.NewConn(g, e.src.Load(), l, remote, local, false)
	g.pc.SetSource(e.src)
	c.SetContext(g)
	e.mu.Lock()
	e.conns[g] = struct{}{}
	e.mu.Unlock()
	return nil, gnet.None
}

// OnClose releases the connection state.
func (e *Engine) OnClose(c gnet.Conn, _ error) gnet.Action {
	g, ok := c.Context().(*gconn)
	if !ok || g.closed {
		return gnet.None
	}
	g.closed = true
	e.active.Add(-1)
	e.mu.Lock()
	delete(e.conns, g)
	delete(e.waiting, g)
	e.mu.Unlock()
	if g.sendR != nil {
		closeReader(g.sendR)
		g.sendR = nil
	}
	if g.tun != nil {
		g.tun.Close()
		close(g.tunCh)
		g.tun = nil
	}
	g.pc.Closed()
	return gnet.None
}

// Tunnel implements pipeline.Transport for upgraded connections (WebSocket):
// a goroutine writes what the client sends to the app, another reads the
// app and AsyncWrites to the client (gnet checks for closed connections).
// proxy_read_timeout bounds idleness on the app side.
func (g *gconn) Tunnel(up net.Conn, early []byte) {
	g.tun = up
	g.tunCh = make(chan []byte, 64)
	if len(early) > 0 {
		_, _ = g.c.Write(early)
	}
	c := g.c
	go func() {
		for b := range g.tunCh {
			if _, err := up.Write(b); err != nil {
				_ = c.Close()
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if c.AsyncWrite(append([]byte(nil), buf[:n]...), nil) != nil {
					return
				}
			}
			if err != nil {
				_ = c.Close()
				return
			}
		}
	}()
}

// WakeAfter implements pipeline.Transport: a timer wakes the loop, which
// feeds the buffered input again (Wake ignores closed connections).
func (g *gconn) WakeAfter(d time.Duration) {
	c := g.c
	if d <= 0 {
		_ = c.Wake(nil)
		return
	}
	time.AfterFunc(d, func() { _ = c.Wake(nil) })
}

// OnTraffic feeds buffered input to the pipeline. It also runs when a
// connection is woken by the sweeper or a finished sendfile.
func (e *Engine) OnTraffic(c gnet.Conn) gnet.Action {
	g, ok := c.Context().(*gconn)
	if !ok || g.closed {
		return gnet.Close
	}
	switch g.sendState.Load() {
	case 2, 3:
		ok := g.sendState.Load() == 2
		g.sendState.Store(0)
		g.pc.SendDone(ok)
	}
	now := time.Now().UnixNano()
	if g.pc.Expired(now) {
		return gnet.Close
	}
	removed := g.ls.removed.Load()
	if removed && !g.drainSet {
		// Its listener was removed by a reload: answer with
		// "Connection: close" from the next request on.
		g.drainSet = true
		g.pc.SetSource(g.ls.drainSrc)
	}
	if (removed || e.src.Draining()) && g.pc.Idle() && c.InboundBuffered() == 0 && c.OutboundBuffered() == 0 && g.tun == nil &&
		(g.fed || now-g.opened > int64(freshGrace)) {
		// Graceful stop: idle keep-alive connections go. A fresh one
		// (nothing read yet) gets freshGrace for its first request: it
		// may have been accepted just before the listeners closed, its
		// request still on the way (nginx does not close fresh
		// connections at all; it waits for client_header_timeout).
		return gnet.Close
	}
	if g.waitingFlag && !g.drain() {
		return gnet.Close
	}
	if g.closing {
		if c.OutboundBuffered() == 0 {
			return gnet.Close
		}
		// Discard whatever the client sends meanwhile.
		_, _ = c.Discard(-1)
		return gnet.None
	}
	if g.tun != nil {
		// Upgraded: forward the client's bytes; when the writer is far
		// behind, leave them buffered (gnet keeps them) until it catches up.
		buf, _ := c.Peek(-1)
		if len(buf) > 0 {
			select {
			case g.tunCh <- append([]byte(nil), buf...):
				_, _ = c.Discard(len(buf))
			default:
				if c.InboundBuffered() > e.opt.MaxInbound {
					return gnet.Close
				}
			}
		}
		return gnet.None
	}
	if g.pc.Busy() || g.sendR != nil {
		if c.InboundBuffered() > e.opt.MaxInbound {
			return gnet.Close
		}
		return gnet.None
	}
	buf, _ := c.Peek(-1)
	// Feed even with no input: a wake-up may carry a finished upstream
	// exchange to write.
	n := g.pc.Feed(buf)
	if n > 0 {
		g.fed = true
		_, _ = c.Discard(n)
	}
	if g.closing && c.OutboundBuffered() == 0 {
		return gnet.Close
	}
	if c.InboundBuffered() > e.opt.MaxInbound {
		return gnet.Close
	}
	return gnet.None
}

// freshGrace is how long a graceful stop waits for the first request of a
// connection that has sent nothing yet.
const freshGrace = time.Second

// Write implements pipeline.Transport on the loop: gnet writes directly
// and keeps (copies) what the socket does not take.
func (g *gconn) Write(bufs [][]byte) {
	if g.closed {
		return
	}
	if len(bufs) == 1 {
		_, _ = g.c.Write(bufs[0])
	} else {
		_, _ = g.c.Writev(bufs)
	}
	if g.c.OutboundBuffered() > 0 {
		g.wait()
	}
}

// Close implements pipeline.Transport: close after the output drains, since
// gnet's Close truncates queued output.
func (g *gconn) Close() {
	g.closing = true
	if g.c.OutboundBuffered() > 0 {
		g.wait()
	}
}

// SendFile implements pipeline.Transport with sendfile(2) beside gnet: once
// gnet's output is drained, the socket is dup'd and handed to Go's netpoller
// (net.FileConn) whose TCPConn.ReadFrom uses sendfile; when it finishes the
// loop is woken to resume the pipeline.
func (g *gconn) SendFile(f *os.File, off, n int64) {
	g.SendStream(&fileSection{f: f, off: off, n: n})
}

// SendStream implements pipeline.Transport like SendFile: a goroutine
// copies r to the dup'd socket, blocking on it, so a slow client slows the
// reader down (the back-pressure gnet lacks). A reader with a WriteTo
// method that copies from an *os.File gets sendfile too.
func (g *gconn) SendStream(r io.Reader) {
	g.sendR = r
	if g.c.OutboundBuffered() > 0 {
		g.wait()
		return
	}
	g.startSend()
}

func (g *gconn) startSend() {
	r := g.sendR
	g.sendR = nil
	fd, err := g.c.Dup()
	if err != nil {
		closeReader(r)
		g.sendState.Store(3)
		_ = g.c.Wake(nil)
		return
	}
	g.sendState.Store(1)
	timeout := g.pc.SendTimeout()
	c := g.c
	go func() {
		ok := sendStream(fd, r, timeout)
		closeReader(r)
		if ok {
			g.sendState.Store(2)
		} else {
			g.sendState.Store(3)
		}
		_ = c.Wake(nil)
	}()
}

func closeReader(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// fileSection is n bytes of f from off; WriteTo hands the file to the
// socket's ReadFrom, i.e. sendfile(2). Close closes f.
type fileSection struct {
	f      *os.File
	off, n int64
}

func (s *fileSection) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	k, err := s.f.ReadAt(p, s.off)
	s.off += int64(k)
	s.n -= int64(k)
	if err == io.EOF && k > 0 {
		err = nil
	}
	return k, err
}

func (s *fileSection) WriteTo(w io.Writer) (int64, error) {
	if _, err := s.f.Seek(s.off, io.SeekStart); err != nil {
		return 0, err
	}
	k, err := io.Copy(w, io.LimitReader(s.f, s.n))
	s.off += k
	s.n -= k
	if err == nil && s.n > 0 {
		err = io.ErrUnexpectedEOF // the file shrank
	}
	return k, err
}

func (s *fileSection) Close() error { return s.f.Close() }

// deadlineWriter renews the write deadline of nc before every write, so
// send_timeout bounds the time between two successive writes as in nginx,
// not the whole transfer. It forwards ReadFrom so sendfile still applies.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		_ = d.nc.SetWriteDeadline(time.Now().Add(d.timeout))
	}
	return d.nc.Write(p)
}

func (d *deadlineWriter) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if ok {
		_, ok = lr.R.(*os.File)
	}
	if !ok {
		// Not a file: plain writes, each with its deadline.
		return io.CopyBuffer(struct{ io.Writer }{d}, r, make([]byte, 32<<10))
	}
	// sendfile in steps, each with a fresh deadline.
	const step = 4 << 20
	var total int64
	for lr.N > 0 {
		if d.timeout > 0 {
			_ = d.nc.SetWriteDeadline(time.Now().Add(d.timeout))
		}
		k, err := d.nc.(io.ReaderFrom).ReadFrom(&io.LimitedReader{R: lr.R, N: min(lr.N, step)})
		lr.N -= k
		total += k
		if err != nil {
			return total, err
		}
		if k == 0 {
			return total, io.ErrUnexpectedEOF
		}
	}
	return total, nil
}

// sendStream copies r to the socket fd (a dup the caller hands over).
func sendStream(fd int, r io.Reader, timeout time.Duration) bool {
	sock := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(sock)
	sock.Close()
	if err != nil {
		return false
	}
	defer nc.Close()
	w := &deadlineWriter{nc: nc, timeout: timeout}
	if wt, ok := r.(io.WriterTo); ok {
		_, err = wt.WriteTo(w)
	} else {
		_, err = io.CopyBuffer(struct{ io.Writer }{w}, r, make([]byte, 32<<10))
	}
	return err == nil
}

// wait registers the connection with the drain poller.
func (g *gconn) wait() {
	if g.waitingFlag {
		return
	}
	g.waitingFlag = true
	g.waitSince = time.Now()
	g.lastOut = g.c.OutboundBuffered()
	g.e.mu.Lock()
	first := len(g.e.waiting) == 0
	g.e.waiting[g] = struct{}{}
	g.e.mu.Unlock()
	if first {
		// Switch the sweeper to its fast tick.
		select {
		case g.e.kick <- struct{}{}:
		default:
		}
	}
}

// drain is called on the loop when a waiting connection is woken. It returns
// false when send_timeout passed without progress.
func (g *gconn) drain() bool {
	out := g.c.OutboundBuffered()
	if out == 0 {
		g.waitingFlag = false
		g.e.mu.Lock()
		delete(g.e.waiting, g)
		g.e.mu.Unlock()
		if g.sendR != nil {
			g.startSend()
		}
		return true
	}
	if out < g.lastOut {
		g.lastOut = out
		g.waitSince = time.Now()
		return true
	}
	if to := g.pc.SendTimeout(); to > 0 && time.Since(g.waitSince) > to {
		return false
	}
	return true
}

// sweeper wakes connections waiting for output to drain (every 2 ms) and
// those whose deadline passed (every 250 ms): gnet has no timers per
// connection, and OnTick runs off the loops, so it only wakes them and the
// loop decides.
func (e *Engine) sweeper() {
	select {
	case <-e.ready:
	case <-e.stop:
		return
	}
	// The fast 2 ms tick runs only while some connection waits for its
	// output to drain; otherwise the sweeper wakes every 250 ms, so an idle
	// or busy-but-flowing server pays no timer wake-ups per request.
	const fastTick, slowTick = 2 * time.Millisecond, 250 * time.Millisecond
	t := time.NewTimer(slowTick)
	defer t.Stop()
	var batch []*gconn
	lastSweep := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case <-e.kick:
		case <-t.C:
		}
		now := time.Now()
		batch = batch[:0]
		e.mu.Lock()
		for g := range e.waiting {
			batch = append(batch, g)
		}
		waiting := len(e.waiting) > 0
		if now.Sub(lastSweep) >= slowTick {
			lastSweep = now
			ns := now.UnixNano()
			for g := range e.conns {
				if d := g.pc.Deadline(); d != 0 && ns >= d {
					batch = append(batch, g)
				}
			}
		}
		e.mu.Unlock()
		for _, g := range batch {
			_ = g.c.Wake(nil)
		}
		next := slowTick
		if waiting {
			next = fastTick
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// ErrNoListeners is returned when the config has no server to listen for.
var ErrNoListeners = errors.New("no listening sockets in the configuration")

// Check validates that the engine has something to serve.
func (e *Engine) Check() error {
	if len(e.snap.Listeners) == 0 {
		return ErrNoListeners
	}
	for _, l := range e.snap.Listeners {
		if l.Default == nil {
			return fmt.Errorf("listener %s has no server", l.Addr)
		}
	}
	return nil
}

// Drain performs a graceful stop (QUIT): no new connections, busy ones get
// "Connection: close" after their current request, idle ones are closed;
// it returns when none is left or the timeout passes. Any goroutine.
func (e *Engine) Drain(timeout time.Duration) {
	// Stop accepting first (as nginx closes its listening sockets): after a
	// binary upgrade the new process keeps accepting on the same sockets.
	e.retireAll()
	e.src.Drain()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		// A connection accepted just before the retire may still be on
		// its way to OnOpen: look after a pause.
		time.Sleep(20 * time.Millisecond)
		e.mu.Lock()
		n := len(e.conns)
		batch := make([]*gconn, 0, n)
		for g := range e.conns {
			batch = append(batch, g)
		}
		e.mu.Unlock()
		if n == 0 {
			return
		}
		for _, g := range batch {
			_ = g.c.Wake(nil)
		}
	}
}

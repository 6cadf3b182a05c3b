// Package tlsterm terminates TLS beside the gnet engine (gnet has no TLS):
// each TLS connection gets a crypto/tls session and two goroutines — one
// reading, one owning the pipeline.Conn — and goes through the very same
// pipeline as plaintext connections. Only the Transport differs.
package tlsterm

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"edgeproxy/metrics"
	"edgeproxy/pipeline"
	"edgeproxy/snapshot"
)

// Server serves the SSL listeners of a snapshot.
type Server struct {
	snap  *snapshot.Snapshot
	src   *pipeline.Source
	lns   []*tlisten // the live listening sockets
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*tconn]struct{}
	done  bool

	// Listen, when set, opens a listener's socket instead of net.Listen
	// (a binary upgrade passes the inherited sockets this way).
	Listen func(l *snapshot.Listener, network string) (net.Listener, error)
}

// New prepares the TLS listeners of snap (those with "listen ... ssl");
// connections follow src across reloads.
func New(snap *snapshot.Snapshot, src *pipeline.Source) *Server {
	return &Server{snap: snap, src: src, conns: map[*tconn]struct{}{}}
}

// Config builds the tls.Config of a listener: SNI chooses the server among
// those on the socket (the default server without SNI or for an unknown
// name), and the server's own configuration (certificates, client
// authentication, ticket keys) serves the handshake.
func Config(l *snapshot.Listener, src *pipeline.Source) *tls.Config {
	def := &l.Default.Root.TLS
	cfg := &tls.Config{
		MinVersion:             def.MinVersion,
		MaxVersion:             def.MaxVersion,
		CipherSuites:           def.Ciphers,
		CurvePreferences:       def.Curves,
		SessionTicketsDisabled: def.NoTickets,
		NextProtos:             []string{"http/1.1"}, // no HTTP/2 yet
	}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		srv := serverFor(l, src, hello.ServerName)
		tc := &srv.Root.TLS
		if tc.Config == nil {
			srv = currentListener(l, src).Default
			tc = &srv.Root.TLS
		}
		if tc.Staples != nil {
			startStapling(tc, srv.Root.ErrorLog)
		}
		return tc.Config, nil
	}
	return cfg
}

// tlsFor is the TLS settings of the server chosen by SNI; a server sharing
// the socket without its own certificates uses the default server's.
func tlsFor(l *snapshot.Listener, src *pipeline.Source, sni string) *snapshot.TLSConf {
	srv := serverFor(l, src, sni)
	if srv.Root.TLS.Config != nil {
		return &srv.Root.TLS
	}
	return &currentListener(l, src).Default.Root.TLS
}

// currentListener is l in the current snapshot: certificates and settings
// are re-read on reload.
func currentListener(l *snapshot.Listener, src *pipeline.Source) *snapshot.Listener {
	if src != nil {
		if cur := src.Load().Listener(l.Network, l.Addr); cur != nil {
			return cur
		}
	}
	return l
}

// serverFor picks the server of a TLS connection by its SNI name
// (ngx_http_ssl_servername), the default server without one.
func serverFor(l *snapshot.Listener, src *pipeline.Source, sni string) *snapshot.Server {
	l = currentListener(l, src)
	if sni != "" {
		if idx, _, ok := l.Names.Match([]byte(sni), nil); ok {
			return l.Servers[idx]
		}
	}
	return l.Default
}

// Start opens the listeners and serves them in the background. Stapling
// starts at once, so that the first clients already get a staple, and
// nginx's configuration warnings about stapling go to the error log.
func (s *Server) Start() error {
	warned := map[string]bool{}
	for _, l := range s.snap.Listeners {
		if !l.SSL {
			continue
		}
		for _, srv := range l.Servers {
			tc := &srv.Root.TLS
			for _, w := range tc.Warnings {
				if !warned[w] {
					warned[w] = true
					configWarning(srv.Root.ErrorLog, w)
				}
			}
			startStapling(tc, srv.Root.ErrorLog)
		}
		tl, err := s.listen(l)
		if err != nil {
			s.Stop()
			return err
		}
		s.mu.Lock()
		s.serve(tl)
		s.mu.Unlock()
	}
	return nil
}

// tlisten is one TLS listening socket. A reload that drops it sets
// removed (after drainSrc): its connections answer with "Connection: close"
// and go when idle.
type tlisten struct {
	key      string // "network addr", as engine.Key
	l        *snapshot.Listener
	ln       net.Listener
	removed  atomic.Bool
	drainSrc *pipeline.Source
}

func (s *Server) listen(l *snapshot.Listener) (*tlisten, error) {
	network := "tcp4"
	if l.Network == "tcp6" {
		network = "tcp6"
	}
	if l.Network == "unix" {
		network = "unix"
		_ = os.Remove(l.Addr)
	}
	var ln net.Listener
	var err error
	if s.Listen != nil {
		ln, err = s.Listen(l, network)
	} else {
		ln, err = net.Listen(network, l.Addr)
	}
	if err != nil {
		return nil, err
	}
	return &tlisten{key: l.Network + " " + l.Addr, l: l, ln: ln}, nil
}

// serve starts accepting on tl. Under s.mu.
func (s *Server) serve(tl *tlisten) {
	s.lns = append(s.lns, tl)
	s.wg.Add(1)
	go s.accept(tl, Config(tl.l, s.src))
}

// Prepare opens the TLS sockets that next adds, without accepting yet (a
// reload binds every new socket before it switches anything). commit
// serves them and retires the sockets next drops: they stop accepting at
// once and their connections drain for at most drain. abort closes what
// Prepare opened (the reload was refused). Main goroutine.
func (s *Server) Prepare(next *snapshot.Snapshot) (commit func(drain time.Duration), abort func(), err error) {
	s.mu.Lock()
	live := map[string]bool{}
	for _, tl := range s.lns {
		live[tl.key] = true
	}
	s.mu.Unlock()
	want := map[string]bool{}
	var added []*tlisten
	abort = func() {
		for _, tl := range added {
			tl.ln.Close()
		}
	}
	for _, l := range next.Listeners {
		if !l.SSL {
			continue
		}
		k := l.Network + " " + l.Addr
		want[k] = true
		if live[k] {
			continue
		}
		tl, err := s.listen(l)
		if err != nil {
			abort()
			return nil, nil, err
		}
		added = append(added, tl)
	}
	commit = func(drain time.Duration) {
		s.mu.Lock()
		defer s.mu.Unlock()
		kept := s.lns[:0]
		var gone []*tlisten
		for _, tl := range s.lns {
			if want[tl.key] {
				kept = append(kept, tl)
			} else {
				gone = append(gone, tl)
			}
		}
		s.lns = kept
		for _, tl := range added {
			s.serve(tl)
		}
		for _, tl := range gone {
			src := pipeline.NewSource(next)
			src.Drain()
			tl.drainSrc = src
			tl.removed.Store(true)
			tl.ln.Close()
			go s.drain(tl, drain)
		}
	}
	return commit, abort, nil
}

// drain wakes the connections of tl (nil: all) until none is left or the
// timeout passes, then closes what remains when tl is a removed listener.
func (s *Server) drain(tl *tlisten, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		time.Sleep(20 * time.Millisecond)
		n := 0
		s.mu.Lock()
		for c := range s.conns {
			if tl == nil || c.tl == tl {
				n++
				if time.Now().After(deadline) {
					c.nc.Close()
					continue
				}
				select {
				case c.wake <- struct{}{}:
				default:
				}
			}
		}
		s.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return
		}
	}
}

// Drain is the graceful stop of the TLS side (after CloseListeners and the
// Source's Drain): requests in flight finish, idle connections close; it
// returns when none is left or after timeout (Stop closes the rest).
func (s *Server) Drain(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return
		}
	}
}

// CloseListeners stops accepting (graceful stop); the connections stay.
func (s *Server) CloseListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tl := range s.lns {
		tl.ln.Close()
	}
}

// Files returns copies of the listening sockets by "network addr", for a
// new binary to inherit (binary upgrade). The caller closes them.
func (s *Server) Files() (map[string]*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*os.File{}
	for _, tl := range s.lns {
		if ul, ok := tl.ln.(*net.UnixListener); ok {
			// The new binary serves this path from now on: closing
			// ours must not unlink it.
			ul.SetUnlinkOnClose(false)
		}
		fl, ok := tl.ln.(interface{ File() (*os.File, error) })
		if !ok {
			continue
		}
		f, err := fl.File()
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, err
		}
		out[tl.key] = f
	}
	return out, nil
}

// Stop closes the listeners and the connections.
func (s *Server) Stop() {
	s.mu.Lock()
	s.done = true
	for _, tl := range s.lns {
		tl.ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept(tl *tlisten, cfg *tls.Config) {
	defer s.wg.Done()
	ln, l := tl.ln, tl.l
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c := &tconn{s: s, tl: tl, nc: nc, tc: tls.Server(nc, cfg), wake: make(chan struct{}, 1), data: make(chan *[]byte, 4), done: make(chan struct{}), opened: time.Now()}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.run(l)
	}
}

// tconn is one TLS connection: the pipeline's Transport.
type tconn struct {
	s        *Server
	nc       net.Conn
	tc       *tls.Conn
	pc       *pipeline.Conn
	wake     chan struct{}
	data     chan *[]byte
	done     chan struct{} // closed when the owner returns
	closing  bool
	sendDone int // 0 none, 1 ok, 2 failed
	tun      net.Conn

	tl       *tlisten  // the socket it came through
	opened   time.Time // accept time
	fed      bool      // some input was consumed
	drainSet bool      // switched to its removed listener's draining source
}

// freshGrace is how long a graceful stop waits for the first request of a
// connection that has sent nothing yet (it may have been accepted just
// before the listener closed); nginx waits for client_header_timeout.
const freshGrace = time.Second

// gone reports whether a graceful stop or the removal of its listener may
// close the connection now: idle, nothing buffered, no tunnel. It also
// switches a connection of a removed listener to its draining source.
func (c *tconn) gone(pending []byte) bool {
	removed := c.tl.removed.Load()
	if removed && !c.drainSet {
		c.drainSet = true
		c.pc.SetSource(c.tl.drainSrc)
	}
	draining := removed || (c.s.src != nil && c.s.src.Draining())
	return draining && c.pc.Idle() && len(pending) == 0 && c.tun == nil &&
		(c.fed || time.Since(c.opened) > freshGrace)
}

// wbufs are the coalescing buffers of Write, pooled so that idle
// connections hold none.
var wbufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// rbufs carry what the reader read to the owner, which gives them back
// once copied: no allocation per read, and an idle connection holds only
// its reader's own buffer.
var rbufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// run is the owner goroutine: handshake, then feed what the reader
// goroutine delivers, wake-ups and timeouts to the pipeline.
func (c *tconn) run(l *snapshot.Listener) {
	defer func() {
		close(c.done) // a reader blocked on a full c.data gives up
		c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	_ = c.nc.SetDeadline(time.Now().Add(l.Default.HeaderLims.ClientHeaderTimeout))
	// Counted as accepted, handled and active from now on (stub_status),
	// as nginx counts a connection in its TLS handshake.
	metrics.ConnOpened(0)
	if err := c.tc.Handshake(); err != nil {
		metrics.TLSHandshake(false)
		metrics.Transition(0, metrics.Waiting, metrics.Gone)
		return
	}
	metrics.TLSHandshake(true)
	_ = c.nc.SetDeadline(time.Time{})
	st := c.tc.ConnectionState()
	snap, ln := c.s.snap, l
	if c.s.src != nil {
		if cur := c.s.src.Load().Listener(l.Network, l.Addr); cur != nil {
			snap, ln = c.s.src.Load(), cur
		}
	}
	c.pc = pipeline.NewConnCounted(c, snap, ln, addrPort(c.nc.RemoteAddr()), addrPort(c.nc.LocalAddr()), true)
	if c.s.src != nil {
		c.pc.SetSource(c.s.src)
	}
	c.pc.SetTLS(protoName(st.Version), cipherName(st.CipherSuite), st.ServerName, st.DidResume)
	if tc := tlsFor(ln, c.s.src, st.ServerName); tc.Verify != snapshot.VerifyOff {
		c.pc.SetClientCert(verifyClient(tc, st.PeerCertificates, time.Now()))
	}
	defer c.pc.Closed()
	defer func() {
		if c.tun != nil {
			c.tun.Close()
		}
	}()

	go c.reader()
	var pending []byte
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if d := c.pc.Deadline(); d != 0 {
			timer.Reset(time.Until(time.Unix(0, d)))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case bp, ok := <-c.data:
			if !ok {
				return
			}
			pending = append(pending, *bp...)
			rbufs.Put(bp)
		case <-c.wake:
		case <-timer.C:
			if c.pc.Expired(time.Now().UnixNano()) {
				return
			}
		}
		if c.tun != nil {
			if len(pending) > 0 {
				if _, err := c.tun.Write(pending); err != nil {
					return
				}
				pending = pending[:0]
			}
			continue
		}
		if c.gone(pending) {
			return
		}
		for {
			n := c.pc.Feed(pending)
			if n > 0 {
				c.fed = true
			}
			pending = pending[n:]
			if c.sendDone != 0 {
				ok := c.sendDone == 1
				c.sendDone = 0
				c.pc.SendDone(ok)
				continue
			}
			break
		}
		if c.closing {
			return
		}
		if len(pending) > 4<<20 {
			return // no back-pressure owed to a client that floods
		}
	}
}

// reader reads from the TLS session and hands copies (pooled buffers) to
// the owner.
func (c *tconn) reader() {
	defer close(c.data)
	buf := make([]byte, 16<<10) // one TLS record's plaintext at most
	for {
		n, err := c.tc.Read(buf)
		if n > 0 {
			bp := rbufs.Get().(*[]byte)
			*bp = append((*bp)[:0], buf[:n]...)
			select {
			case c.data <- bp:
			case <-c.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Write implements pipeline.Transport: a blocking write on the owner
// goroutine, bounded by send_timeout.
func (c *tconn) Write(bufs [][]byte) {
	if c.closing {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.pc.SendTimeout()))
	if len(bufs) > 1 {
		// One TLS record and one write(2) for a head and a small body,
		// instead of one of each per piece.
		total := 0
		for _, b := range bufs {
			total += len(b)
		}
		if total <= 16<<10 {
			wp := wbufs.Get().(*[]byte)
			w := (*wp)[:0]
			for _, b := range bufs {
				w = append(w, b...)
			}
			_, err := c.tc.Write(w)
			*wp = w
			wbufs.Put(wp)
			if err != nil {
				c.closing = true
			}
			return
		}
	}
	for _, b := range bufs {
		if _, err := c.tc.Write(b); err != nil {
			c.closing = true
			return
		}
	}
}

// SendFile implements pipeline.Transport: the file goes through the TLS
// session (no sendfile is possible under encryption).
func (c *tconn) SendFile(f *os.File, off, n int64) {
	defer f.Close()
	c.SendStream(io.NewSectionReader(f, off, n))
}

// SendStream implements pipeline.Transport: a blocking copy on the owner
// goroutine, each write bounded by send_timeout; the client's input keeps
// arriving on the reader goroutine meanwhile.
func (c *tconn) SendStream(r io.Reader) {
	defer func() {
		if cl, ok := r.(io.Closer); ok {
			cl.Close()
		}
	}()
	if wt, ok := r.(io.WriterTo); ok {
		if _, err := wt.WriteTo(deadlineWriter{c}); err != nil {
			c.sendDone = 2
			return
		}
		c.sendDone = 1
		return
	}
	buf := make([]byte, 16<<10)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.pc.SendTimeout()))
			if _, err := c.tc.Write(buf[:n]); err != nil {
				c.sendDone = 2
				return
			}
		}
		if rerr == io.EOF {
			c.sendDone = 1
			return
		}
		if rerr != nil {
			c.sendDone = 2
			return
		}
	}
}

// Tunnel implements pipeline.Transport for upgraded connections: the app's
// bytes are copied to the client by a goroutine; the owner loop writes the
// client's bytes to the app.
func (c *tconn) Tunnel(up net.Conn, early []byte) {
	c.tun = up
	if len(early) > 0 {
		_, _ = c.tc.Write(early)
	}
	go func() {
		_, _ = io.Copy(c.tc, up)
		c.nc.Close()
	}()
}

// Close implements pipeline.Transport: output is already written.
func (c *tconn) Close() { c.closing = true }

// WakeAfter implements pipeline.Transport.
func (c *tconn) WakeAfter(d time.Duration) {
	if d <= 0 {
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
	time.AfterFunc(d, func() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	})
}

// protoName is nginx's (OpenSSL's) $ssl_protocol spelling.
func protoName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return tls.VersionName(v)
}

// cipherName is nginx's (OpenSSL's) $ssl_cipher spelling.
func cipherName(id uint16) string {
	if n, ok := snapshot.OpenSSLCipherName(id); ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

// deadlineWriter writes to the TLS session with send_timeout renewed
// before every write (nginx's timeout between two successive writes).
type deadlineWriter struct{ c *tconn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.c.nc.SetWriteDeadline(time.Now().Add(d.c.pc.SendTimeout()))
	return d.c.tc.Write(p)
}

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

// Config builds the tls.Config of a listener: certificates chosen by SNI
// among the servers on the socket (the default server without SNI), and
// among a server's pairs the first the client supports (ECDSA or RSA).
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
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		l := l
		if src != nil {
			// Certificates are re-read on reload: use the current snapshot.
			if cur := src.Load().Listener(l.Network, l.Addr); cur != nil {
				l = cur
			}
		}
		def := &l.Default.Root.TLS
		srv := l.Default
		if hello.ServerName != "" {
			if idx, _, ok := l.Names.Match([]byte(hello.ServerName), nil); ok {
				srv = l.Servers[idx]
			}
		}
		certs := srv.Root.TLS.Certs
		if len(certs) == 0 {
			certs = def.Certs
		}
		for i := range certs {
			if hello.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		if len(certs) > 0 {
			return &certs[0], nil
		}
		return nil, errors.New("no certificate")
	}
	return cfg
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

// Start opens the listeners and serves them in the background.
func (s *Server) Start() error {
	for _, l := range s.snap.Listeners {
		if !l.SSL {
			continue
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
		c := &tconn{s: s, tl: tl, nc: nc, tc: tls.Server(nc, cfg), wake: make(chan struct{}, 1), data: make(chan []byte, 4), opened: time.Now()}
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
	data     chan []byte
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
		c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	_ = c.nc.SetDeadline(time.Now().Add(l.Default.HeaderLims.ClientHeaderTimeout))
	if err := c.tc.Handshake(); err != nil {
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	st := c.tc.ConnectionState()
	snap, ln := c.s.snap, l
	if c.s.src != nil {
		if cur := c.s.src.Load().Listener(l.Network, l.Addr); cur != nil {
			snap, ln = c.s.src.Load(), cur
		}
	}
	c.pc = pipeline.NewConn(c, snap, ln, addrPort(c.nc.RemoteAddr()), addrPort(c.nc.LocalAddr()), true)
	if c.s.src != nil {
		c.pc.SetSource(c.s.src)
	}
	c.pc.SetTLS(protoName(st.Version), cipherName(st.CipherSuite), st.ServerName)
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
		case b, ok := <-c.data:
			if !ok {
				return
			}
			pending = append(pending, b...)
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

// reader reads from the TLS session and hands copies to the owner.
func (c *tconn) reader() {
	defer close(c.data)
	buf := make([]byte, 16<<10)
	for {
		n, err := c.tc.Read(buf)
		if n > 0 {
			b := make([]byte, n)
			copy(b, buf[:n])
			c.data <- b
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
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.pc.SendTimeout()))
	_, err := io.Copy(c.tc, io.NewSectionReader(f, off, n))
	if err != nil {
		c.sendDone = 2
		return
	}
	c.sendDone = 1
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

// AsyncWrite implements pipeline.Transport from a worker goroutine; the
// owner writes nothing while a body is being relayed.
func (c *tconn) AsyncWrite(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(60 * time.Second))
	_, err := c.tc.Write(b)
	return err
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

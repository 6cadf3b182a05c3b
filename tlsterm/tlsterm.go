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
	"time"

	"edgeproxy/metrics"
	"edgeproxy/pipeline"
	"edgeproxy/snapshot"
)

// Server serves the SSL listeners of a snapshot.
type Server struct {
	snap  *snapshot.Snapshot
	src   *pipeline.Source
	lns   []net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*tconn]struct{}
	done  bool
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

// Start opens the listeners and serves them in the background.
func (s *Server) Start() error {
	for _, l := range s.snap.Listeners {
		if !l.SSL {
			continue
		}
		network := "tcp4"
		if l.Network == "tcp6" {
			network = "tcp6"
		}
		if l.Network == "unix" {
			network = "unix"
			_ = os.Remove(l.Addr)
		}
		ln, err := net.Listen(network, l.Addr)
		if err != nil {
			s.Stop()
			return err
		}
		s.lns = append(s.lns, ln)
		cfg := Config(l, s.src)
		s.wg.Add(1)
		go s.accept(ln, l, cfg)
	}
	return nil
}

// Stop closes the listeners and the connections.
func (s *Server) Stop() {
	s.mu.Lock()
	s.done = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept(ln net.Listener, l *snapshot.Listener, cfg *tls.Config) {
	defer s.wg.Done()
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
		c := &tconn{s: s, nc: nc, tc: tls.Server(nc, cfg), wake: make(chan struct{}, 1), data: make(chan []byte, 4)}
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
		for {
			n := c.pc.Feed(pending)
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

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"edgeproxy/pipeline"
	"edgeproxy/snapshot"
)

// Listening sockets come and go with reloads, but a gnet engine's set of
// listeners is fixed when it starts. So the sockets are served by groups:
// one gnet engine for the listeners of the starting configuration, and one
// more for the listeners each reload adds. A removed listener stops
// accepting at once (see retire in fds_linux.go), its connections finish
// their request with "Connection: close" and go; a group whose listeners
// are all gone and drained is stopped. Every group shares the engine's
// connection table, sweeper, worker_connections budget and snapshot source.

// Key names a listening socket by network and address; it is how
// listeners are matched across reloads and handed to a new binary.
func Key(l *snapshot.Listener) string { return l.Network + " " + l.Addr }

// lstate is one plain (non-TLS) listening socket served by gnet.
type lstate struct {
	key     string
	l       *snapshot.Listener // as first opened
	grp     *group
	inherit int    // listening socket inherited from the old binary; -1: none
	standIn string // unix path gnet binds in place of the inherited socket
	// removed is set by a reload that drops the listener; drainSrc (set
	// before) makes its connections answer with "Connection: close".
	removed  atomic.Bool
	drainSrc *pipeline.Source
}

// group is one gnet engine and the listeners it serves.
type group struct {
	gnet.BuiltinEventEngine
	e     *Engine
	lns   []*lstate
	byKey map[netip.AddrPort]*lstate
	byUnx map[string]*lstate
	wild  map[uint16][]*lstate

	eng      gnet.Engine
	booted   chan error // OnBoot's result
	release  chan bool  // true: serve; false: give up (a refused reload)
	done     chan struct{}
	err      error
	stopping atomic.Bool
	serving  atomic.Bool  // released: a later end of its gnet engine is fatal
	live     atomic.Int32 // listeners not yet removed and drained
}

var standInSeq atomic.Int64

func (e *Engine) newGroup(lns []*lstate) *group {
	g := &group{e: e, lns: lns, byKey: map[netip.AddrPort]*lstate{}, byUnx: map[string]*lstate{},
		wild: map[uint16][]*lstate{}, booted: make(chan error, 1), release: make(chan bool, 1), done: make(chan struct{})}
	g.live.Store(int32(len(lns)))
	for _, ls := range lns {
		ls.grp = g
		l := ls.l
		switch {
		case ls.inherit >= 0:
			ls.standIn = filepath.Join(os.TempDir(), fmt.Sprintf("edgeproxy-%d-%d.sock", os.Getpid(), standInSeq.Add(1)))
			g.byUnx[ls.standIn] = ls
		case l.Network == "unix":
			g.byUnx[l.Addr] = ls
		default:
			ap := netip.MustParseAddrPort(l.Addr)
			if l.Wildcard {
				g.wild[ap.Port()] = append(g.wild[ap.Port()], ls)
			} else {
				g.byKey[ap] = ls
			}
		}
	}
	return g
}

// addrs are the gnet listen addresses of the group.
func (g *group) addrs() []string {
	var out []string
	for _, ls := range g.lns {
		l := ls.l
		switch {
		case ls.inherit >= 0:
			out = append(out, "unix://"+ls.standIn)
		case l.Network == "unix":
			out = append(out, "unix://"+l.Addr)
		case l.Network == "tcp6":
			out = append(out, "tcp6://"+l.Addr)
		default:
			out = append(out, "tcp4://"+l.Addr)
		}
	}
	return out
}

// start binds the group's sockets and waits until they are bound (or
// failed); the group accepts only after release.
func (g *group) start(opts []gnet.Option) error {
	go func() {
		g.err = gnet.Rotate(g, g.addrs(), opts...)
		close(g.done)
		if g.serving.Load() && !g.stopping.Load() {
			select {
			case g.e.fatal <- g.err:
			default:
			}
		}
	}()
	select {
	case err := <-g.booted:
		if err != nil {
			g.stopping.Store(true)
			g.release <- false
			<-g.done
			return err
		}
		return nil
	case <-g.done:
		g.stopping.Store(true)
		if g.err == nil {
			g.err = errors.New("listeners did not start")
		}
		// gnet v2.9.7 does not close the sockets it bound before the one
		// that failed (createListeners): close them, or they would go on
		// listening with nobody accepting.
		for _, ls := range g.lns {
			addr := ls.l.Addr
			if ls.inherit >= 0 {
				addr = ls.standIn
			}
			closeListening(addr)
		}
		return g.err
	}
}

// OnBoot runs after gnet bound the sockets and before it polls them: the
// place to swap in inherited sockets. It then waits for release.
func (g *group) OnBoot(eng gnet.Engine) gnet.Action {
	g.eng = eng
	var err error
	for _, ls := range g.lns {
		if ls.inherit < 0 {
			continue
		}
		setListenerOpts(ls.inherit, g.e.opt, g.e.opt.NoDelay && g.e.snap.TCPNoDelay)
		if err = adopt(ls.standIn, ls.inherit); err != nil {
			break
		}
		ls.inherit = -1
	}
	g.booted <- err
	if !<-g.release {
		return gnet.Shutdown
	}
	g.serving.Store(true)
	return gnet.None
}

// OnOpen, OnTraffic and OnClose hand gnet's events to the engine.
func (g *group) OnOpen(c gnet.Conn) ([]byte, gnet.Action) { return g.e.OnOpen(c, g.lookup(c)) }

// OnTraffic implements gnet.EventHandler.
func (g *group) OnTraffic(c gnet.Conn) gnet.Action { return g.e.OnTraffic(c) }

// OnClose implements gnet.EventHandler.
func (g *group) OnClose(c gnet.Conn, err error) gnet.Action { return g.e.OnClose(c, err) }

// lookup finds the listener a connection came through by the local address
// gnet reports (the bound address of the listener).
func (g *group) lookup(c gnet.Conn) *lstate {
	switch a := c.LocalAddr().(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ls, ok := g.byKey[ap]; ok {
			return ls
		}
		w := g.wild[ap.Port()]
		for _, ls := range w {
			if (ls.l.Network == "tcp6") == (ap.Addr().Is6() && !ap.Addr().Is4In6()) || len(w) == 1 {
				return ls
			}
		}
	case *net.UnixAddr:
		if ls, ok := g.byUnx[a.Name]; ok {
			return ls
		}
	}
	if len(g.lns) > 0 {
		return g.lns[0]
	}
	return nil
}

// stop shuts the group's gnet engine down (closing what is left).
func (g *group) stop(ctx context.Context) {
	g.stopping.Store(true)
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.eng.Stop(ctx)
	select {
	case <-g.done:
	case <-ctx.Done():
	}
}

// Update applies the listeners of a reloaded snapshot and installs it:
// listeners it adds are bound first (a failure refuses the reload, the old
// configuration keeps serving); then the snapshot is swapped; then
// listeners it drops stop accepting, and their connections drain for at
// most drain before they are closed. TLS listeners are not handled here.
// Main goroutine only.
func (e *Engine) Update(next *snapshot.Snapshot, drain time.Duration) error {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	want := map[string]bool{}
	var added []*lstate
	for _, l := range next.Listeners {
		if l.SSL {
			continue
		}
		k := Key(l)
		want[k] = true
		if e.live[k] == nil {
			added = append(added, &lstate{key: k, l: l, inherit: -1})
		}
	}
	var g *group
	if len(added) > 0 {
		g = e.newGroup(added)
		if err := g.start(e.gnetOptions(added)); err != nil {
			return fmt.Errorf("listening on %s: %v", strings.Join(g.addrs(), ", "), err)
		}
	}
	e.src.Store(next)
	if g != nil {
		e.groups = append(e.groups, g)
		for _, ls := range added {
			e.live[ls.key] = ls
		}
		g.release <- true
	}
	for k, ls := range e.live {
		if want[k] {
			continue
		}
		delete(e.live, k)
		if err := e.removeListener(ls, next); err != nil {
			e.opt.Logger.Printf("[alert] %v", err)
		}
		go e.drainListener(ls, drain)
	}
	return nil
}

// removeListener makes ls stop accepting; its connections start draining.
func (e *Engine) removeListener(ls *lstate, snap *snapshot.Snapshot) error {
	src := pipeline.NewSource(snap)
	src.Drain()
	ls.drainSrc = src
	ls.removed.Store(true)
	_, err := retire(ls.l.Addr)
	return err
}

// drainListener waits for the connections of a removed listener to finish
// (waking them so idle ones close), then stops its group when it was the
// group's last listener.
func (e *Engine) drainListener(ls *lstate, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	var batch []*gconn
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		batch = batch[:0]
		e.mu.Lock()
		for g := range e.conns {
			if g.ls == ls {
				batch = append(batch, g)
			}
		}
		e.mu.Unlock()
		if len(batch) == 0 {
			break
		}
		for _, g := range batch {
			_ = g.c.Wake(nil)
		}
	}
	if ls.grp.live.Add(-1) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ls.grp.stop(ctx)
		cancel()
		e.lmu.Lock()
		for i, g := range e.groups {
			if g == ls.grp {
				e.groups = append(e.groups[:i], e.groups[i+1:]...)
				break
			}
		}
		e.lmu.Unlock()
	}
}

// retireAll stops accepting on every listener (graceful stop); the
// connections are left to Drain.
func (e *Engine) retireAll() {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	for _, ls := range e.live {
		if _, err := retire(ls.l.Addr); err != nil {
			e.opt.Logger.Printf("[alert] %v", err)
		}
	}
}

// ListenerFiles returns copies of the plain listening sockets, keyed by
// Key, for a new binary to inherit (binary upgrade). The caller closes them.
func (e *Engine) ListenerFiles() (map[string]*os.File, error) {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	out := map[string]*os.File{}
	for k, ls := range e.live {
		f, err := dupListener(ls.l.Addr)
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, err
		}
		out[k] = f
	}
	return out, nil
}

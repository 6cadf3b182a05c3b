package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"edgeproxy/engine"
	"edgeproxy/snapshot"
	"edgeproxy/tlsterm"
)

// Binary upgrade, nginx's way (https://nginx.org/en/docs/control.html#upgrade):
// USR2 makes the running process rename its pid file to <pid>.oldbin and
// start the binary on disk with the same arguments, passing its listening
// sockets as inherited descriptors listed in an environment variable (nginx
// uses NGINX="fd;fd;"). The new process serves on those sockets instead of
// binding new ones, so the kernel's accept queue is shared and no connection
// is refused; both processes accept until the operator sends QUIT to the old
// one, which stops accepting at once and drains. If the new binary exits
// early, the old one takes its pid file back.

// inheritEnv lists the inherited sockets: "network addr=fd;..." with the
// Key of each listener.
const inheritEnv = "EDGEPROXY_INHERIT"

// selfPath is the binary to start on USR2: argv[0] as resolved at start (the
// file at that path is what the operator replaced).
var selfPath = func() string {
	p := os.Args[0]
	if !strings.Contains(p, "/") {
		if lp, err := exec.LookPath(p); err == nil {
			return lp
		}
		return p
	}
	if ap, err := filepath.Abs(p); err == nil {
		return ap
	}
	return p
}()

// inheritedSockets reads (and clears) the inherited socket list.
func inheritedSockets(stderr io.Writer) map[string]int {
	v := os.Getenv(inheritEnv)
	if v == "" {
		return nil
	}
	os.Unsetenv(inheritEnv)
	out, bad := parseInherit(v)
	for _, ent := range bad {
		fmt.Fprintf(stderr, "%s: [alert] invalid socket %q in %s environment variable, ignoring\n", name, ent, inheritEnv)
	}
	for _, fd := range out {
		syscall.CloseOnExec(fd)
	}
	return out
}

// parseInherit parses "network addr=fd;..." (descriptors from 3 up, as
// ExtraFiles numbers them); bad lists the entries it cannot use.
func parseInherit(v string) (out map[string]int, bad []string) {
	out = map[string]int{}
	for _, ent := range strings.Split(v, ";") {
		if ent == "" {
			continue
		}
		i := strings.LastIndexByte(ent, '=')
		if i <= 0 {
			bad = append(bad, ent)
			continue
		}
		fd, err := strconv.Atoi(ent[i+1:])
		if err != nil || fd < 3 || fd > 1<<20 {
			bad = append(bad, ent)
			continue
		}
		out[ent[:i]] = fd
	}
	return out, bad
}

// inheritedListen serves TLS listeners on inherited sockets when there are
// some; otherwise it binds.
func inheritedListen(inh map[string]int) func(l *snapshot.Listener, network string) (net.Listener, error) {
	return func(l *snapshot.Listener, network string) (net.Listener, error) {
		if fd, ok := inh[engine.Key(l)]; ok {
			delete(inh, engine.Key(l))
			f := os.NewFile(uintptr(fd), l.Addr)
			ln, err := net.FileListener(f)
			f.Close()
			return ln, err
		}
		return net.Listen(network, l.Addr)
	}
}

// upgrade is a running new binary.
type upgrade struct {
	pid    int
	exited chan error
}

// startUpgrade starts the new binary with the listening sockets.
func startUpgrade(e *engine.Engine, ts *tlsterm.Server, pid *pidFile) (*upgrade, error) {
	files, err := e.ListenerFiles()
	if err != nil {
		return nil, err
	}
	tf, err := ts.Files()
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	for k, f := range tf {
		files[k] = f
	}
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var env strings.Builder
	extra := make([]*os.File, 0, len(keys))
	for i, k := range keys {
		// ExtraFiles[i] becomes descriptor 3+i in the child.
		fmt.Fprintf(&env, "%s=%d;", k, 3+i)
		extra = append(extra, files[k])
	}
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	cmd := exec.Command(selfPath, os.Args[1:]...)
	cmd.Env = append(os.Environ(), inheritEnv+"="+env.String())
	cmd.ExtraFiles = extra
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := pid.moveAside(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		pid.restore()
		return nil, err
	}
	u := &upgrade{pid: cmd.Process.Pid, exited: make(chan error, 1)}
	go func() { u.exited <- cmd.Wait() }()
	return u, nil
}

// pidFile is the `pid` file: written at start, renamed to .oldbin during a
// binary upgrade, removed at exit only while it still names this process.
type pidFile struct {
	path string
	me   []byte
}

func newPidFile(path string) *pidFile {
	return &pidFile{path: path, me: []byte(strconv.Itoa(os.Getpid()) + "\n")}
}

func (p *pidFile) write() error {
	if p.path == "" {
		return nil
	}
	if err := os.WriteFile(p.path, p.me, 0o644); err != nil {
		return fmt.Errorf("open() %q failed (%v)", p.path, err)
	}
	return nil
}

func (p *pidFile) moveAside() error {
	if p.path == "" {
		return nil
	}
	if err := os.Rename(p.path, p.path+".oldbin"); err != nil {
		return fmt.Errorf("rename() %q to %q failed (%v)", p.path, p.path+".oldbin", err)
	}
	return nil
}

// restore takes the pid file back from .oldbin (the new binary failed).
func (p *pidFile) restore() {
	if p.path == "" {
		return
	}
	if b, err := os.ReadFile(p.path + ".oldbin"); err == nil && bytes.Equal(b, p.me) {
		_ = os.Rename(p.path+".oldbin", p.path)
	}
}

func (p *pidFile) remove() {
	if p.path == "" {
		return
	}
	for _, f := range []string{p.path, p.path + ".oldbin"} {
		if b, err := os.ReadFile(f); err == nil && bytes.Equal(b, p.me) {
			_ = os.Remove(f)
		}
	}
}

// switchesTLS reports whether a socket of a is plain in b and ssl in a, or
// the reverse: it would move between the engine and tlsterm, which a reload
// does not do.
func switchesTLS(a, b *snapshot.Snapshot) bool {
	for _, l := range b.Listeners {
		if m := a.Listener(l.Network, l.Addr); m != nil && m.SSL != l.SSL {
			return true
		}
	}
	return false
}

// keptOptionChanges lists the sockets that a reload keeps but whose listen
// options (backlog, reuseport, ipv6only) changed: the running socket keeps
// its old options, so the operator is told rather than left to guess.
func keptOptionChanges(a, b *snapshot.Snapshot) []string {
	var out []string
	for _, l := range b.Listeners {
		m := a.Listener(l.Network, l.Addr)
		if m == nil {
			continue
		}
		if m.Backlog != l.Backlog || m.ReusePort != l.ReusePort || m.IPv6Only != l.IPv6Only {
			out = append(out, fmt.Sprintf("the listen options (backlog, reuseport, ipv6only) of %s changed in %s:%d: the running socket keeps its old ones until a restart or a binary upgrade", l.Addr, l.File, l.Line))
		}
	}
	return out
}

// shutdownTimeout is worker_shutdown_timeout, 60 s when unset (nginx waits
// without limit).
func shutdownTimeout(s *snapshot.Snapshot) time.Duration {
	if s.ShutdownTimeout > 0 {
		return s.ShutdownTimeout
	}
	return 60 * time.Second
}

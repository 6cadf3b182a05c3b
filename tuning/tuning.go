// Package tuning turns command-line flags for bare-metal tuning into engine
// options and process settings (GOMAXPROCS, GOGC, memory limit, rlimits).
// Flags override what the config says.
package tuning

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"edgeproxy/engine"
)

// Flags are the tuning flags; the zero value means "use the config's
// value or edgeproxy's default".
type Flags struct {
	Loops        int
	ReadBuf      int
	WriteBuf     int
	SockRecv     int
	SockSend     int
	NoDelay      bool
	KeepIdle     time.Duration
	KeepIntvl    time.Duration
	KeepCnt      int
	ReusePort    bool
	LockOSThread bool
	GoMaxProcs   int
	GOGC         int
	MemoryLimit  int64
	MaxInbound   int
}

// Register defines the tuning flags on fs.
func (t *Flags) Register(fs *flag.FlagSet) {
	fs.IntVar(&t.Loops, "loops", 0, "event loops (0: worker_processes from the config)")
	fs.IntVar(&t.ReadBuf, "read-buffer", 64<<10, "per-loop read buffer cap in bytes (gnet ReadBufferCap)")
	fs.IntVar(&t.WriteBuf, "write-buffer", 64<<10, "per-connection write buffer cap in bytes (gnet WriteBufferCap)")
	fs.IntVar(&t.SockRecv, "so-rcvbuf", 0, "SO_RCVBUF for accepted sockets (0: kernel default)")
	fs.IntVar(&t.SockSend, "so-sndbuf", 0, "SO_SNDBUF for accepted sockets (0: kernel default)")
	fs.BoolVar(&t.NoDelay, "tcp-nodelay", true, "TCP_NODELAY on accepted sockets")
	fs.DurationVar(&t.KeepIdle, "tcp-keepalive", 0, "TCP keepalive idle time (0: off, like nginx without so_keepalive)")
	fs.DurationVar(&t.KeepIntvl, "tcp-keepintvl", 0, "TCP keepalive probe interval (0: kernel default)")
	fs.IntVar(&t.KeepCnt, "tcp-keepcnt", 0, "TCP keepalive probe count (0: kernel default)")
	fs.BoolVar(&t.ReusePort, "reuseport", false, "SO_REUSEPORT on every listener (one socket per loop)")
	fs.BoolVar(&t.LockOSThread, "lock-os-thread", false, "lock each event loop to an OS thread")
	fs.IntVar(&t.GoMaxProcs, "gomaxprocs", 0, "GOMAXPROCS (0: event loops + 1, capped at the CPU count)")
	fs.IntVar(&t.GOGC, "gogc", 200, "GOGC percentage (garbage collector target; -1 disables)")
	fs.Int64Var(&t.MemoryLimit, "memory-limit", 0, "soft memory limit in bytes for the Go runtime (0: none)")
	fs.IntVar(&t.MaxInbound, "max-inbound", 4<<20, "bytes a connection may have buffered unread before it is closed")
}

// Apply sets process-wide settings. loops is the final loop count.
func (t *Flags) Apply(loops, rlimitNofile int) error {
	procs := t.GoMaxProcs
	if procs <= 0 {
		// One P per event loop plus one for everything else (GC workers,
		// timers, the sweeper, upstream and sendfile goroutines). With
		// exactly one P per loop, a loop returning from epoll_wait can
		// find its P taken by a background goroutine: measured p99 of
		// `return 200` went from ~1 ms to 5-12 ms.
		procs = loops + 1
		if procs > runtime.NumCPU() {
			procs = runtime.NumCPU()
		}
	}
	runtime.GOMAXPROCS(procs)
	debug.SetGCPercent(t.GOGC)
	if t.MemoryLimit > 0 {
		debug.SetMemoryLimit(t.MemoryLimit)
	}
	if rlimitNofile > 0 {
		lim := syscall.Rlimit{Cur: uint64(rlimitNofile), Max: uint64(rlimitNofile)}
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur); err == nil && cur.Max > lim.Max {
			lim.Max = cur.Max
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d) failed (%v)", rlimitNofile, err)
		}
	}
	return nil
}

// EngineOptions maps the flags to engine options.
func (t *Flags) EngineOptions() engine.Options {
	return engine.Options{
		Loops: t.Loops, ReadBufferCap: t.ReadBuf, WriteBufferCap: t.WriteBuf,
		SocketRecvBuf: t.SockRecv, SocketSendBuf: t.SockSend, NoDelay: t.NoDelay,
		KeepAlive: t.KeepIdle, KeepInterval: t.KeepIntvl, KeepCount: t.KeepCnt,
		ReusePort: t.ReusePort, LockOSThread: t.LockOSThread, MaxInbound: t.MaxInbound,
	}
}

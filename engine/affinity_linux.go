package engine

import (
	"sync"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// CPUSet is a set of CPUs an event loop may run on (worker_cpu_affinity).
type CPUSet = unix.CPUSet

// loopPins remembers the event loops already pinned (worker_cpu_affinity).
var loopPins sync.Map

// pinLoop pins the OS thread of c's event loop the first time a connection
// of that loop is opened: gnet offers no per-loop start hook, but OnOpen runs
// on the loop, whose goroutine is locked to its thread (LockOSThread is
// forced on when affinity is asked for), and sched_setaffinity(0, ...)
// applies to the calling thread. Loops get the sets in the order they first
// serve, as nginx gives its workers the masks in order.
func (e *Engine) pinLoop(c gnet.Conn) {
	if len(e.opt.CPUAffinity) == 0 {
		return
	}
	el := c.EventLoop()
	if _, done := loopPins.LoadOrStore(el, struct{}{}); done {
		return
	}
	n := int(e.pinned.Add(1)) - 1
	set := e.opt.CPUAffinity[n%len(e.opt.CPUAffinity)]
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		e.opt.Logger.Printf("[alert] sched_setaffinity() failed (%v)", err)
	}
}

// Pinned reports how many event loops have been pinned to CPUs so far.
func (e *Engine) Pinned() int { return int(e.pinned.Load()) }

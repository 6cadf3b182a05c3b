package pipeline

import (
	"sync"
	"time"
)

// workers runs upstream exchanges on long-lived goroutines. A fresh
// goroutine per request starts with a small stack and grows it (copying)
// on the way down fasthttp's client: about 5% of the CPU of a proxied
// request. Reused goroutines keep their grown stacks, as fasthttp's own
// server worker pool does. Idle workers exit after workerIdle.
var workers workerPool

const workerIdle = 10 * time.Second

type workerPool struct {
	mu   sync.Mutex
	idle []*worker // LIFO: the most recently used has the warmest stack
}

type worker struct {
	task chan func()
}

// run runs f on an idle worker, or on a new one. Any goroutine.
func (p *workerPool) run(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.task <- f
		return
	}
	p.mu.Unlock()
	w := &worker{task: make(chan func(), 1)}
	w.task <- f
	go w.loop(p)
}

func (w *worker) loop(p *workerPool) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case f := <-w.task:
			f()
		case <-t.C:
			// Idle for long: leave, unless a task was just handed over.
			p.mu.Lock()
			for i, x := range p.idle {
				if x == w {
					p.idle = append(p.idle[:i], p.idle[i+1:]...)
					p.mu.Unlock()
					return
				}
			}
			p.mu.Unlock()
			// Not in the idle list: a task is on its way.
			f := <-w.task
			f()
		}
		p.mu.Lock()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(workerIdle)
	}
}

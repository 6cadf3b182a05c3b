// Package accesslog writes access-log lines for the event loops without
// blocking them: a line is appended to the file's in-memory buffer under a
// short lock (no I/O, no allocation once the buffer has grown), and a
// flusher goroutine writes the buffer out. Whole lines are appended at once,
// so lines from different loops never interleave, and nothing is dropped:
// if the disk falls far behind, the appending loop writes the backlog
// itself rather than lose lines.
package accesslog

import (
	"os"
	"sync"
	"time"
)

// maxBacklog is the buffered amount past which Write flushes synchronously.
const maxBacklog = 8 << 20

// File is one open access log. Safe for concurrent use.
type File struct {
	path string

	mu    sync.Mutex
	f     *os.File
	buf   []byte
	spare []byte
	// wmu serialises writes to f (flusher, synchronous flushes, reopen).
	wmu sync.Mutex
}

// Registry owns the open files, so a path used by several access_log
// directives is opened once, and SIGUSR1 reopens all of them (logrotate).
type Registry struct {
	mu    sync.Mutex
	files map[string]*File
	stop  chan struct{}
	once  sync.Once
	every time.Duration
}

// NewRegistry starts a flusher that writes buffered lines every interval
// (nginx writes each line at once without buffer=; 100 ms keeps the cost of
// a write(2) per line off the hot path while staying close to that).
func NewRegistry(interval time.Duration) *Registry {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	r := &Registry{files: map[string]*File{}, stop: make(chan struct{}), every: interval}
	go r.flusher()
	return r
}

// Open returns the log file for path, opening it for appending (mode 0644,
// created if missing) the first time, as nginx does at start.
func (r *Registry) Open(path string) (*File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.files[path]; ok {
		return f, nil
	}
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, f: fd, buf: make([]byte, 0, 64<<10), spare: make([]byte, 0, 64<<10)}
	r.files[path] = f
	return f, nil
}

// Write appends one line (which must end in '\n'). Any goroutine.
func (f *File) Write(line []byte) {
	f.mu.Lock()
	f.buf = append(f.buf, line...)
	big := len(f.buf) > maxBacklog
	f.mu.Unlock()
	if big {
		f.Flush()
	}
}

// Flush writes what is buffered. Any goroutine.
func (f *File) Flush() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	out := f.buf
	f.buf = f.spare[:0]
	f.mu.Unlock()
	if len(out) > 0 {
		_, _ = f.f.Write(out)
	}
	if cap(out) > 1<<20 {
		out = make([]byte, 0, 64<<10)
	}
	f.mu.Lock()
	f.spare = out[:0]
	f.mu.Unlock()
}

func (f *File) reopen() error {
	f.Flush()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	fd, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	old := f.f
	f.f = fd
	return old.Close()
}

// Reopen reopens every file (SIGUSR1, `edgeproxy -s reopen`), after
// flushing what was buffered into the old ones.
func (r *Registry) Reopen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, f := range r.files {
		if err := f.reopen(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// FlushAll writes every buffer out (used at shutdown and by tests).
func (r *Registry) FlushAll() {
	r.mu.Lock()
	files := make([]*File, 0, len(r.files))
	for _, f := range r.files {
		files = append(files, f)
	}
	r.mu.Unlock()
	for _, f := range files {
		f.Flush()
	}
}

// Close stops the flusher, flushes and closes the files.
func (r *Registry) Close() {
	r.once.Do(func() { close(r.stop) })
	r.FlushAll()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.files {
		_ = f.f.Close()
	}
	r.files = map[string]*File{}
}

func (r *Registry) flusher() {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.FlushAll()
		}
	}
}

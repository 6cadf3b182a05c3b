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

// chunkSize is the size of one in-memory log buffer: a full chunk is queued
// for the flusher and a fresh one (recycled) takes its place, so appending
// never copies a growing buffer.
const chunkSize = 256 << 10

// maxQueued is the number of full chunks past which Write flushes
// synchronously (the disk is far behind; nothing is dropped).
const maxQueued = 32

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

// File is one open access log. Safe for concurrent use.
type File struct {
	path string

	mu    sync.Mutex
	f     *os.File
	buf   *[]byte   // the chunk being filled
	full  []*[]byte // full chunks waiting for the flusher
	spare []*[]byte // flusher's scratch list (under wmu)
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
	f := &File{path: path, f: fd, buf: chunkPool.Get().(*[]byte)}
	r.files[path] = f
	return f, nil
}

// Write appends one line (which must end in '\n'). Any goroutine; it
// does no I/O unless the flusher is far behind.
func (f *File) Write(line []byte) {
	f.mu.Lock()
	if len(*f.buf)+len(line) > chunkSize && len(*f.buf) > 0 {
		f.full = append(f.full, f.buf)
		f.buf = chunkPool.Get().(*[]byte)
	}
	*f.buf = append(*f.buf, line...)
	behind := len(f.full) > maxQueued
	f.mu.Unlock()
	if behind {
		f.Flush()
	}
}

// Flush writes what is buffered, in order. Any goroutine.
func (f *File) Flush() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	chunks := append(f.spare[:0], f.full...)
	f.full = f.full[:0]
	if len(*f.buf) > 0 {
		chunks = append(chunks, f.buf)
		f.buf = chunkPool.Get().(*[]byte)
	}
	f.mu.Unlock()
	for _, c := range chunks {
		_, _ = f.f.Write(*c)
		*c = (*c)[:0]
		if cap(*c) == chunkSize {
			chunkPool.Put(c)
		}
	}
	for i := range chunks {
		chunks[i] = nil
	}
	f.spare = chunks[:0]
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

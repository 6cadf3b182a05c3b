// Package spool holds a request or response body of any size in bounded
// memory: the first bytes in a memory buffer, the rest in an unlinked
// temporary file, as nginx does with client_body_buffer_size /
// client_body_temp_path and proxy_buffers / proxy_temp_path /
// proxy_max_temp_file_size.
//
// One goroutine writes (Write, then CloseWrite); readers obtained with
// NewReader may read concurrently with the writer and block until the
// bytes they want have been written, which is how a body is streamed to
// the app while it still arrives (proxy_request_buffering off) without
// the writer ever blocking: the writer only appends.
package spool

import (
	"errors"
	"io"
	"os"
	"sync"
)

// ErrFull is returned by Write when the file part would pass FileMax.
var ErrFull = errors.New("spool: temporary file size limit reached")

// Spool is a growing byte sequence. The zero value is an empty spool with
// no memory limit and no file (everything stays in memory); call Reset to
// set limits. A Spool must not be copied after first use.
type Spool struct {
	mem     []byte
	memMax  int
	dir     string
	fileMax int64 // <0: unlimited; 0: no file
	f       *os.File
	fileN   int64

	// Only when shared with a concurrent reader (Share) are mu and cond
	// used; the common single-goroutine case takes no lock.
	shared bool
	mu     sync.Mutex
	cond   *sync.Cond
	done   bool
	err    error
}

// Reset empties s and sets its limits: up to memMax bytes in memory, then
// a temporary file created in dir (os.TempDir() when empty) holding at most
// fileMax bytes (fileMax < 0: unlimited; 0: never spill, Write returns
// ErrFull instead). The memory buffer is kept for reuse; a previous file is
// closed. Called by the owner while no reader is active.
func (s *Spool) Reset(memMax int, dir string, fileMax int64) {
	s.closeFile()
	s.mem = s.mem[:0]
	if cap(s.mem) > memMax && cap(s.mem) > 1<<20 {
		s.mem = nil // do not pin a huge buffer in a pool
	}
	s.memMax, s.dir, s.fileMax = memMax, dir, fileMax
	s.fileN = 0
	s.shared, s.done, s.err = false, false, nil
}

// Close releases the temporary file (the memory buffer stays for reuse).
// Called by the owner once no reader is active.
func (s *Spool) Close() { s.closeFile() }

func (s *Spool) closeFile() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// Share prepares s for a reader running concurrently with the writer.
// Call it before handing a Reader to another goroutine.
func (s *Spool) Share() {
	s.shared = true
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
}

// Len is the number of bytes written.
func (s *Spool) Len() int64 { return int64(len(s.mem)) + s.fileN }

// Spilled reports whether part of the body is in the temporary file.
func (s *Spool) Spilled() bool { return s.f != nil }

// Mem returns the bytes held in memory: the whole body unless Spilled.
// Valid until the next Write or Reset; owner goroutine only.
func (s *Spool) Mem() []byte { return s.mem }

// File returns the temporary file and how many bytes it holds (nil, 0 when
// nothing spilled). The file is owned by s.
func (s *Spool) File() (*os.File, int64) { return s.f, s.fileN }

// Write appends p (the memory part first, then the file). It returns
// ErrFull when the file would pass its limit (nothing of p is then
// written past what fitted in memory: n says how much was taken), or the
// error creating or writing the file. The writer goroutine only.
func (s *Spool) Write(p []byte) (int, error) {
	n := 0
	if room := s.memMax - len(s.mem); room > 0 && s.f == nil {
		k := min(room, len(p))
		if s.shared {
			s.mu.Lock()
		}
		s.mem = append(s.mem, p[:k]...)
		if s.shared {
			s.mu.Unlock()
			s.cond.Broadcast()
		}
		n, p = k, p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if s.fileMax == 0 || (s.fileMax > 0 && s.fileN+int64(len(p)) > s.fileMax) {
		return n, ErrFull
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "edgeproxy-")
		if errors.Is(err, os.ErrNotExist) && s.dir != "" {
			// nginx creates its temp paths at start; do it on first use.
			if os.MkdirAll(s.dir, 0o700) == nil {
				f, err = os.CreateTemp(s.dir, "edgeproxy-")
			}
		}
		if err != nil {
			return n, err
		}
		// Unlinked at once: the data lives as long as the descriptor, and
		// nothing is left behind after a crash (nginx removes its temp
		// files after use too).
		os.Remove(f.Name())
		if s.shared {
			s.mu.Lock()
		}
		s.f = f
		if s.shared {
			s.mu.Unlock()
		}
	}
	k, err := s.f.WriteAt(p, s.fileN)
	if s.shared {
		s.mu.Lock()
	}
	s.fileN += int64(k)
	if s.shared {
		s.mu.Unlock()
		s.cond.Broadcast()
	}
	return n + k, err
}

// CloseWrite marks the end of the body; err != nil makes readers fail
// with it once they reach the end of what was written (a client that went
// away mid-upload must not look like a complete body). The writer only.
func (s *Spool) CloseWrite(err error) {
	if !s.shared {
		s.done, s.err = true, err
		return
	}
	s.mu.Lock()
	s.done, s.err = true, err
	s.mu.Unlock()
	s.cond.Broadcast()
}

// Reader reads a Spool from the start. Rewind starts it over (a retried
// upstream attempt resends the same body). It deliberately has no Close
// method: fasthttp closes body streams that are io.Closers.
type Reader struct {
	s   *Spool
	off int64
}

// NewReader returns a reader of s from its first byte. With Share it may
// run on another goroutine while s is still written.
func (s *Spool) NewReader() *Reader { return &Reader{s: s} }

// Rewind moves r back to the first byte.
func (r *Reader) Rewind() { r.off = 0 }

// Read implements io.Reader, blocking (when shared) until bytes past the
// current offset are written or the writer closes.
func (r *Reader) Read(p []byte) (int, error) {
	s := r.s
	if len(p) == 0 {
		return 0, nil
	}
	var memN, fileN int64
	var f *os.File
	var mem []byte
	if s.shared {
		s.mu.Lock()
		for r.off >= int64(len(s.mem))+s.fileN && !s.done {
			s.cond.Wait()
		}
		mem, fileN, f = s.mem, s.fileN, s.f
		memN = int64(len(mem))
		done, err := s.done, s.err
		s.mu.Unlock()
		if r.off >= memN+fileN && done {
			if err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
	} else {
		mem, fileN, f = s.mem, s.fileN, s.f
		memN = int64(len(mem))
		if r.off >= memN+fileN {
			if s.err != nil {
				return 0, s.err
			}
			return 0, io.EOF
		}
	}
	if r.off < memN {
		n := copy(p, mem[r.off:memN])
		r.off += int64(n)
		return n, nil
	}
	fo := r.off - memN
	want := min(int64(len(p)), fileN-fo)
	n, err := f.ReadAt(p[:want], fo)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// IsShared reports whether Share was called since the last Reset.
func (s *Spool) IsShared() bool { return s.shared }

var scratch = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Fill appends what r yields until io.EOF (then it returns a nil
// error). It returns ErrFull when the file limit is reached: r then still
// holds the unread rest and nothing read from r was lost. hint is the
// expected total length (-1 if unknown): a body that fits in memory is
// read straight into a buffer of that size. The writer goroutine only;
// not for shared spools.
func (s *Spool) Fill(r io.Reader, hint int64) (int64, error) {
	var total int64
	for s.f == nil && len(s.mem) < s.memMax {
		if hint >= 0 && int64(len(s.mem)) >= hint {
			break // the announced length is here: only EOF should follow
		}
		if len(s.mem) == cap(s.mem) {
			c := max(2*cap(s.mem), 4096)
			if hint >= 0 {
				c = max(c, int(min(hint, int64(s.memMax))))
			}
			c = min(c, s.memMax)
			m := make([]byte, len(s.mem), c)
			copy(m, s.mem)
			s.mem = m
		}
		n, err := r.Read(s.mem[len(s.mem):cap(s.mem)])
		s.mem = s.mem[:len(s.mem)+n]
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	buf := *bp
	for {
		want := len(buf)
		if room := s.memMax - len(s.mem); room > 0 && s.f == nil {
			want = min(want, room) // never spill and refuse within one read
		} else {
			if s.fileMax == 0 {
				return total, ErrFull
			}
			if s.fileMax > 0 {
				room := s.fileMax - s.fileN
				if room <= 0 {
					return total, ErrFull
				}
				want = int(min(int64(want), room))
			}
		}
		n, err := r.Read(buf[:want])
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

package static

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Defaults used when the corresponding Cache field is zero.
const (
	DefaultSmallFileMax = 64 << 10
	DefaultMaxEntries   = 16384
	DefaultMaxDataBytes = 64 << 20
)

const numShards = 64 // power of two

// stackPathMax is the longest path (without the NUL) that Open copies to a
// stack buffer on a cache miss; longer paths cost one allocation.
const stackPathMax = 1023

var (
	// ErrNotRegular is returned by Cache.Open for paths that exist but are
	// neither regular files nor directories (FIFOs, sockets, devices).
	// nginx's static handler answers 404 for them ("is not a regular file",
	// ngx_http_static_module.c); reading a FIFO would also block the loop.
	ErrNotRegular = errors.New("static: not a regular file")
	// ErrInvalidPath is returned for paths containing a NUL byte, which
	// the kernel would silently truncate. Status maps it to 404.
	ErrInvalidPath = errors.New("static: invalid path")
	// ErrChanged is returned by File.OpenFD when the file on disk is no
	// longer the one described by the File; call Cache.Open again.
	ErrChanged = errors.New("static: file changed since it was cached")
)

// File is an immutable snapshot of a file's metadata (and, for small files,
// its content). A *File returned by Cache.Open is never modified afterwards,
// so it may be used from any goroutine, and its byte slices may be written
// to the network directly; they must not be modified.
type File struct {
	Path    string    // filesystem path as given to Open
	Size    int64     // st_size
	ModTime time.Time // st_mtime with nanoseconds
	Inode   uint64    // st_ino
	IsDir   bool      // directories have no Data; nginx answers 301 for them
	// ETag is nginx's strong validator "<hex mtime seconds>-<hex size>",
	// quoted (ngx_http_set_etag in ngx_http_core_module.c).
	ETag []byte
	// LastModified is the IMF-fixdate of ModTime truncated to seconds.
	LastModified []byte
	// Data is the whole content if Size <= the cache's SmallFileMax, read
	// once and shared by all requests; nil otherwise (use OpenFD).
	Data []byte

	st statInfo
}

// statInfo is the subset of struct stat used to detect changes.
type statInfo struct {
	dev, ino         uint64
	mode             uint32
	size             int64
	mtimeNs, ctimeNs int64
}

// same reports whether two stats describe the same file content. ctime is
// compared as well so that chmod/chown (which could turn a readable file
// into an unreadable one, nginx then answering 403) invalidate the entry.
func (s *statInfo) same(o *statInfo) bool {
	return s.ino == o.ino && s.dev == o.dev && s.size == o.size &&
		s.mtimeNs == o.mtimeNs && s.ctimeNs == o.ctimeNs && s.mode == o.mode
}

// Cache is an open-file metadata cache keyed by full filesystem path.
//
// The zero value is ready to use with the defaults documented on each
// field. Fields must be set before the first call to Open and not changed
// afterwards. All methods are safe for concurrent use by any number of
// goroutines (event loops): the map is split into 64 shards, each guarded
// by an RWMutex that is only held for the map operation, never across a
// system call.
//
// Cost per Open on a hit: one xxhash of the path, one shard read-lock and
// one stat(2) (newfstatat, ~0.3-1 µs) to re-validate the entry against
// inode, device, size, mtime and ctime (nanoseconds), so changes on disk are
// seen by the very next request, as with nginx without open_file_cache.
// A changed file is re-opened and, if small, re-read. Hits allocate nothing.
type Cache struct {
	// SmallFileMax is the largest file whose content is kept in File.Data.
	// Zero means DefaultSmallFileMax (64 KiB); negative disables Data.
	SmallFileMax int64
	// MaxEntries bounds the number of cached files. Zero means
	// DefaultMaxEntries. When full, arbitrary entries are evicted.
	MaxEntries int
	// MaxDataBytes bounds the total size of cached Data. Zero means
	// DefaultMaxDataBytes.
	MaxDataBytes int64

	once   sync.Once
	shards [numShards]shard
}

type shard struct {
	mu        sync.RWMutex
	m         map[string]*entry
	dataBytes int64
	maxEnt    int
	maxData   int64
}

type entry struct {
	file  *File
	cpath []byte // NUL-terminated path for allocation-free stat
}

func (c *Cache) init() {
	maxEnt := c.MaxEntries
	if maxEnt <= 0 {
		maxEnt = DefaultMaxEntries
	}
	maxData := c.MaxDataBytes
	if maxData <= 0 {
		maxData = DefaultMaxDataBytes
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*entry)
		s.maxEnt = (maxEnt + numShards - 1) / numShards
		s.maxData = (maxData + numShards - 1) / numShards
	}
}

func (c *Cache) smallMax() int64 {
	switch {
	case c.SmallFileMax == 0:
		return DefaultSmallFileMax
	case c.SmallFileMax < 0:
		return -1
	}
	return c.SmallFileMax
}

// Len returns the number of cached entries.
func (c *Cache) Len() int {
	c.once.Do(c.init)
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Open returns the File for path, re-validating a cached entry with one
// stat(2). Errors are bare syscall.Errno values (ENOENT, ENOTDIR, EACCES,
// ENAMETOOLONG, ELOOP, ...) or one of ErrNotRegular / ErrInvalidPath;
// use Status to turn them into the HTTP status nginx would send.
// Negative results are not cached (nginx's open_file_cache_errors is off
// by default). Safe for concurrent use; blocks only for stat/open and, on a
// miss or change, for reading at most SmallFileMax bytes.
func (c *Cache) Open(path []byte) (*File, error) {
	c.once.Do(c.init)
	if len(path) == 0 {
		return nil, syscall.ENOENT
	}
	s := &c.shards[xxhash.Sum64(path)&(numShards-1)]
	s.mu.RLock()
	e := s.m[string(path)]
	s.mu.RUnlock()
	if e != nil {
		st, err := statPath(e.cpath)
		if err != nil {
			c.remove(s, e)
			return nil, err
		}
		if st.same(&e.file.st) {
			return e.file, nil
		}
		if !st.isDir() && !st.isRegular() {
			c.remove(s, e)
			return nil, ErrNotRegular
		}
		return c.load(s, path, e.cpath)
	}
	if bytes.IndexByte(path, 0) >= 0 {
		return nil, ErrInvalidPath
	}
	var cpath []byte
	var buf [stackPathMax + 1]byte
	if len(path) <= stackPathMax {
		n := copy(buf[:], path)
		buf[n] = 0
		cpath = buf[:n+1]
	} else {
		cpath = append(append(make([]byte, 0, len(path)+1), path...), 0)
	}
	// Stat first so that misses for nonexistent files (steady-state 404s)
	// do not allocate.
	st, err := statPath(cpath)
	if err != nil {
		return nil, err
	}
	if !st.isDir() && !st.isRegular() {
		return nil, ErrNotRegular
	}
	return c.load(s, path, nil)
}

func (c *Cache) remove(s *shard, e *entry) {
	s.mu.Lock()
	if s.m[e.file.Path] == e {
		delete(s.m, e.file.Path)
		s.dataBytes -= int64(len(e.file.Data))
	}
	s.mu.Unlock()
}

// load (re)reads path and installs a new entry. cpath may be nil.
func (c *Cache) load(s *shard, path, cpath []byte) (*File, error) {
	p := string(path)
	f, err := readFile(p, c.smallMax())
	if err != nil {
		s.mu.Lock()
		if old := s.m[p]; old != nil {
			delete(s.m, p)
			s.dataBytes -= int64(len(old.file.Data))
		}
		s.mu.Unlock()
		return nil, err
	}
	if cpath == nil {
		cpath = append(append(make([]byte, 0, len(p)+1), p...), 0)
	}
	e := &entry{file: f, cpath: cpath}
	n := int64(len(f.Data))

	s.mu.Lock()
	if old := s.m[p]; old != nil {
		delete(s.m, p)
		s.dataBytes -= int64(len(old.file.Data))
	}
	// Evict arbitrary entries (Go map iteration order is randomised) until
	// both bounds hold; this keeps memory bounded without LRU bookkeeping
	// on the hit path.
	for k, v := range s.m {
		if len(s.m) < s.maxEnt && s.dataBytes+n <= s.maxData {
			break
		}
		delete(s.m, k)
		s.dataBytes -= int64(len(v.file.Data))
	}
	if n <= s.maxData {
		s.m[p] = e
		s.dataBytes += n
	}
	s.mu.Unlock()
	return f, nil
}

// readFile opens path like nginx does (so EACCES is detected even when
// stat succeeds) and builds a File from fstat of the opened descriptor, so
// metadata and Data always describe the same inode.
func readFile(path string, smallMax int64) (*File, error) {
	for attempt := 0; ; attempt++ {
		// O_NONBLOCK as in nginx (NGX_FILE_NONBLOCK): if the path was
		// swapped for a FIFO after our stat, open must not block the loop.
		fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, pe.Err
			}
			return nil, err
		}
		st, err := statFile(fd)
		if err != nil {
			fd.Close()
			return nil, err
		}
		if !st.isDir() && !st.isRegular() {
			fd.Close()
			return nil, ErrNotRegular
		}
		var data []byte
		if st.isRegular() && st.size <= smallMax {
			data = make([]byte, st.size)
			_, err = io.ReadFull(fd, data)
			st2, err2 := statFile(fd)
			fd.Close()
			if err == nil && err2 == nil && st2.same(&st) {
				return newFile(path, st, data), nil
			}
			// The file changed while we read it; try again.
			if attempt < 3 {
				continue
			}
			if err == nil {
				err = err2
			}
			if err == nil || err == io.ErrUnexpectedEOF || err == io.EOF {
				err = ErrChanged
			}
			return nil, err
		}
		fd.Close()
		return newFile(path, st, data), nil
	}
}

func newFile(path string, st statInfo, data []byte) *File {
	mt := time.Unix(0, st.mtimeNs)
	f := &File{
		Path:    path,
		Size:    st.size,
		ModTime: mt,
		Inode:   st.ino,
		IsDir:   st.isDir(),
		Data:    data,
		st:      st,
	}
	f.ETag = AppendETag(nil, mt.Unix(), st.size)
	f.LastModified = AppendHTTPTime(nil, mt.Unix())
	return f
}

// AppendETag appends nginx's entity tag for the given mtime (Unix seconds)
// and size: "\"%xT-%xO\"" in ngx_http_set_etag (lowercase hex).
func AppendETag(dst []byte, mtime, size int64) []byte {
	dst = append(dst, '"')
	dst = appendHex(dst, mtime)
	dst = append(dst, '-')
	dst = appendHex(dst, size)
	return append(dst, '"')
}

func appendHex(dst []byte, v int64) []byte {
	// nginx prints time_t/off_t with %xT/%xO as unsigned hex.
	return strconv.AppendUint(dst, uint64(v), 16)
}

// OpenFD opens the file for sendfile(2) of large files. The caller must
// close the returned file. It returns ErrChanged (and no file) if the path
// now refers to different content than f describes, so that the
// Content-Length already derived from f stays truthful; the caller should
// then call Cache.Open again. Allocates (an *os.File); safe from any
// goroutine.
func (f *File) OpenFD() (*os.File, error) {
	fd, err := os.OpenFile(f.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	st, err := statFile(fd)
	if err != nil {
		fd.Close()
		return nil, err
	}
	if st.ino != f.st.ino || st.dev != f.st.dev || st.size != f.st.size || st.mtimeNs != f.st.mtimeNs {
		fd.Close()
		return nil, ErrChanged
	}
	return fd, nil
}

// Status maps an error from Cache.Open or File.OpenFD to the status nginx's
// static handler returns (ngx_http_static_handler after
// ngx_open_cached_file): ENOENT, ENOTDIR and ENAMETOOLONG give 404
// (nginx does not answer 414 for long file names; 414 only comes from
// request-line limits); EACCES, and on systems with openat EMLINK and ELOOP
// (symlink loops, disable_symlinks), give 403; non-regular files give 404;
// anything else 500. A nil error gives 200. Does not allocate.
func Status(err error) int {
	if err == nil {
		return 200
	}
	// Walk the wrap chain by hand: errors.As would make its target escape
	// and allocate on every call.
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e {
		case ErrNotRegular, ErrInvalidPath:
			return 404
		}
		if en, ok := e.(syscall.Errno); ok {
			switch en {
			case syscall.ENOENT, syscall.ENOTDIR, syscall.ENAMETOOLONG:
				return 404
			case syscall.EACCES, syscall.EMLINK, syscall.ELOOP:
				return 403
			}
			return 500
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 404
	case errors.Is(err, fs.ErrPermission):
		return 403
	}
	return 500
}

//go:build linux

package static

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// atFDCWD is a variable (not a constant) so that it can be converted to
// uintptr for the raw syscall.
var atFDCWD = unix.AT_FDCWD

// statPath stats the NUL-terminated path cpath (following symlinks, as
// nginx's ngx_file_info does) without allocating: the unix.Stat wrapper
// copies its string argument to the heap on every call, which would break
// the zero-allocation guarantee of Cache.Open on the hit path.
//
// The returned error is a bare syscall.Errno; converting small errno values
// to an error interface does not allocate.
func statPath(cpath []byte) (statInfo, error) {
	var st unix.Stat_t
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(atFDCWD),
		uintptr(unsafe.Pointer(&cpath[0])), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
	if e != 0 {
		return statInfo{}, e
	}
	return fromStat(&st), nil
}

// statFile fstats an open file (used on the cache-miss path only).
func statFile(f *os.File) (statInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return statInfo{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statInfo{}, syscall.EINVAL
	}
	return statInfo{
		dev:     uint64(st.Dev),
		ino:     uint64(st.Ino),
		mode:    uint32(st.Mode),
		size:    st.Size,
		mtimeNs: st.Mtim.Nano(),
		ctimeNs: st.Ctim.Nano(),
	}, nil
}

func fromStat(st *unix.Stat_t) statInfo {
	return statInfo{
		dev:     uint64(st.Dev),
		ino:     uint64(st.Ino),
		mode:    uint32(st.Mode),
		size:    st.Size,
		mtimeNs: st.Mtim.Nano(),
		ctimeNs: st.Ctim.Nano(),
	}
}

func (s *statInfo) isDir() bool     { return s.mode&unix.S_IFMT == unix.S_IFDIR }
func (s *statInfo) isRegular() bool { return s.mode&unix.S_IFMT == unix.S_IFREG }

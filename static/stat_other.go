//go:build !linux

package static

import (
	"os"
	"syscall"
)

// statPath is the portable fallback; unlike the Linux version it allocates.
func statPath(cpath []byte) (statInfo, error) {
	fi, err := os.Stat(string(cpath[:len(cpath)-1]))
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			return statInfo{}, pe.Err
		}
		return statInfo{}, err
	}
	return fromFileInfo(fi), nil
}

func statFile(f *os.File) (statInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return statInfo{}, err
	}
	return fromFileInfo(fi), nil
}

func fromFileInfo(fi os.FileInfo) statInfo {
	s := statInfo{size: fi.Size(), mtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), uint64(st.Ino)
	}
	switch {
	case fi.IsDir():
		s.mode = 1
	case fi.Mode().IsRegular():
		s.mode = 2
	}
	return s
}

func (s *statInfo) isDir() bool     { return s.mode == 1 }
func (s *statInfo) isRegular() bool { return s.mode == 2 }

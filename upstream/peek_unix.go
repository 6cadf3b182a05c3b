//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package upstream

import "syscall"

// peerClosed peeks at an idle connection without blocking: EOF, an error or
// unexpected data mean it must not carry another request. RawConn.Control
// is used rather than Read so that an expired read deadline left over from
// the previous response does not hide the check.
func peerClosed(rc syscall.RawConn) bool {
	closed := false
	err := rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err != nil:
			closed = true
		case n == 0:
			closed = true // orderly shutdown by the backend
		default:
			closed = true // data before a request: the stream is out of sync
		}
	})
	return err != nil || closed
}

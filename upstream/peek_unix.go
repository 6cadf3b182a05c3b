//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package upstream

import "syscall"

// peeker peeks at an idle connection without blocking: EOF, an error or
// unexpected data mean it must not carry another request. RawConn.Control
// is used rather than Read so that an expired read deadline left over from
// the previous response does not hide the check. The callback is made
// once per connection (a closure per call would allocate per request).
type peeker struct {
	fn     func(fd uintptr)
	result bool
}

func newPeeker() *peeker {
	p := &peeker{}
	p.fn = func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
			p.result = false
		case err != nil:
			p.result = true
		case n == 0:
			p.result = true // orderly shutdown by the backend
		default:
			p.result = true // data before a request: the stream is out of sync
		}
	}
	return p
}

// closed reports whether the connection behind rc must not be reused.
// Called by the goroutine using the connection.
func (p *peeker) closed(rc syscall.RawConn) bool {
	p.result = false
	err := rc.Control(p.fn)
	return err != nil || p.result
}

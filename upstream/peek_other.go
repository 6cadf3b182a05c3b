//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package upstream

import "syscall"

// peeker cannot peek portably here; stale connections surface as request
// errors instead.
type peeker struct{}

func newPeeker() *peeker { return &peeker{} }

func (*peeker) closed(syscall.RawConn) bool { return false }

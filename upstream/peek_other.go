//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package upstream

import "syscall"

// peerClosed cannot peek portably here; stale connections surface as
// request errors instead.
func peerClosed(syscall.RawConn) bool { return false }

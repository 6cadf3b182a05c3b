package engine

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// gnet v2.9.7 can neither close one listener of a running engine nor serve a
// listening socket it did not open itself. Both are needed: a reload that
// removes a listener must stop accepting on it while its connections drain,
// and a binary upgrade hands the listening sockets to the new process (as
// nginx does with its NGINX environment variable) so that no connection is
// refused. The functions below do both at the file-descriptor level, under
// gnet, using only documented Linux behaviour:
//
//   - a listening socket is found by what it is (SO_ACCEPTCONN) and where it
//     is bound (getsockname), scanning /proc/self/fd;
//   - retire removes it from every epoll instance of the process
//     (EPOLL_CTL_DEL, so no loop is woken for it again, even when another
//     process still holds the socket) and then dup3(2)s a placeholder over its
//     number. The placeholder is a listening, non-blocking, unbound-name unix
//     socket: an accept(2) racing with the swap gets EAGAIN, which gnet treats
//     as "queue empty", and gnet later closes the placeholder instead of a
//     number that may have been reused;
//   - adopt dup3(2)s an inherited socket over the number of a socket gnet
//     bound as a stand-in, in OnBoot, before gnet registers it with epoll.

// sockAddrString renders a bound address as snapshot.Listener.Addr spells it
// ("127.0.0.1:80", "[::]:80", or a unix path).
func sockAddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return a.Name
	}
	return ""
}

// listeningFds returns the descriptors of this process that are listening
// sockets bound to addr (several with SO_REUSEPORT: one per event loop).
func listeningFds(addr string) []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var out []int
	for _, ent := range ents {
		fd, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil || sockAddrString(sa) != addr {
			continue
		}
		out = append(out, fd)
	}
	return out
}

// epollFds returns the epoll instances of this process (gnet's pollers and
// the Go runtime's).
func epollFds() []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var out []int
	for _, ent := range ents {
		link, err := os.Readlink("/proc/self/fd/" + ent.Name())
		if err != nil || !strings.Contains(link, "eventpoll") {
			continue
		}
		if fd, err := strconv.Atoi(ent.Name()); err == nil {
			out = append(out, fd)
		}
	}
	return out
}

// placeholder returns a listening, non-blocking unix socket with an
// autobound abstract name: accept(2) on it reports EAGAIN.
func placeholder() (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// An empty name autobinds a unique abstract address (unix(7)).
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: ""}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// retire stops this process from accepting on the listening sockets bound to
// addr. The socket itself closes unless another process (a new binary)
// holds it too. It returns how many descriptors were retired.
func retire(addr string) (int, error) {
	fds := listeningFds(addr)
	if len(fds) == 0 {
		return 0, nil
	}
	eps := epollFds()
	for _, fd := range fds {
		for _, ep := range eps {
			// ENOENT from the instances that do not watch it.
			_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, nil)
		}
		ph, err := placeholder()
		if err != nil {
			return 0, fmt.Errorf("retiring %s: %v", addr, err)
		}
		err = unix.Dup3(ph, fd, unix.O_CLOEXEC)
		unix.Close(ph)
		if err != nil {
			return 0, fmt.Errorf("retiring %s: dup3: %v", addr, err)
		}
	}
	return len(fds), nil
}

// closeListening closes the listening sockets bound to addr that nobody
// owns any more.
func closeListening(addr string) {
	for _, fd := range listeningFds(addr) {
		unix.Close(fd)
	}
}

// adopt replaces the stand-in socket gnet bound at standIn (a unix path) with
// the inherited listening socket fd, and closes fd.
func adopt(standIn string, fd int) error {
	fds := listeningFds(standIn)
	if len(fds) != 1 {
		return fmt.Errorf("inherited socket: stand-in %s not found (%d)", standIn, len(fds))
	}
	if err := unix.Dup3(fd, fds[0], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("inherited socket: dup3: %v", err)
	}
	unix.Close(fd)
	_ = os.Remove(standIn)
	return nil
}

// dupListener returns a copy of a listening socket bound to addr, for a new
// binary to inherit (the caller closes it).
func dupListener(addr string) (*os.File, error) {
	fds := listeningFds(addr)
	if len(fds) == 0 {
		return nil, fmt.Errorf("no listening socket for %s", addr)
	}
	nfd, err := unix.Dup(fds[0])
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), addr), nil
}

// setListenerOpts sets on an inherited socket the options gnet would have
// set on one it bound (accepted sockets inherit them on Linux).
func setListenerOpts(fd int, o Options, nodelay bool) {
	if sa, err := unix.Getsockname(fd); err == nil {
		if _, ok := sa.(*unix.SockaddrUnix); ok {
			return
		}
	}
	v := 0
	if nodelay {
		v = 1
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v)
	if o.SocketRecvBuf > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.SocketRecvBuf)
	}
	if o.SocketSendBuf > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, o.SocketSendBuf)
	}
}

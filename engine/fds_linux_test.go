package engine

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func listenerFd(t *testing.T, ln net.Listener) int {
	t.Helper()
	fds := listeningFds(ln.Addr().String())
	if len(fds) != 1 {
		t.Fatalf("listeningFds(%s) = %v", ln.Addr(), fds)
	}
	return fds[0]
}

// retire stops the accepting at once: connects are refused, an accept on the
// old number reports EAGAIN (what gnet takes for "queue empty"), and the
// number stays open (gnet closes it later).
func TestRetire(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	fd := listenerFd(t, ln)
	n, err := retire(addr)
	if err != nil || n != 1 {
		t.Fatalf("retire: %d %v", n, err)
	}
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect after retire: %v, want refused", err)
	}
	if _, _, err := unix.Accept(fd); err != unix.EAGAIN {
		t.Fatalf("accept on the retired number: %v, want EAGAIN", err)
	}
	if got := listeningFds(addr); len(got) != 0 {
		t.Fatalf("still listening: %v", got)
	}
	ln.Close() // closes the placeholder now at that number
}

// A socket another process (here: a dup) still holds keeps accepting there
// after retire: the binary-upgrade case.
func TestRetireShared(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	f, err := dupListener(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := retire(addr); err != nil || n != 2 {
		t.Fatalf("retire: %d %v (the dup is in this process too)", n, err)
	}
	// Both numbers are placeholders now: the socket is closed.
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting")
	}
}

// adopt puts an inherited listening socket at the number of a stand-in.
func TestAdopt(t *testing.T) {
	standIn := filepath.Join(t.TempDir(), "s.sock")
	ul, err := net.Listen("unix", standIn)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	sfd := listenerFd(t, ul)
	tl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := tl.Addr().String()
	f, err := tl.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	tl.Close()
	inherited, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := adopt(standIn, inherited); err != nil {
		t.Fatal(err)
	}
	if got := listeningFds(addr); len(got) != 1 || got[0] != sfd {
		t.Fatalf("listening on %s: %v, want the stand-in's number %d", addr, got, sfd)
	}
	if _, err := os.Stat(standIn); !os.IsNotExist(err) {
		t.Errorf("stand-in path left: %v", err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nfd, _, err := unix.Accept(sfd)
	for err == unix.EAGAIN {
		nfd, _, err = unix.Accept(sfd)
	}
	if err != nil {
		t.Fatalf("accept on the adopted socket: %v", err)
	}
	unix.Close(nfd)
}

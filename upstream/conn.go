package upstream

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// dialError marks failures to establish the connection: nothing of the
// request was sent, so even POST may go to the next server (nginx sets
// u->request_sent only once connected).
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect() failed: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// errStaleConn is returned by the first write of a request on a pooled
// connection that the backend already closed (or that has unexpected
// pending data). nginx notices such closes while the connection sits in the
// keepalive cache (ngx_http_upstream_keepalive_close_handler) and never
// uses it; fasthttp does not, so we check before writing and retry on the
// same server without counting a failure.
var errStaleConn = errors.New("upstream keepalive connection closed by peer")

// errConnRetired is returned by the first write of a request on a pooled
// connection that already served keepalive_requests requests; like nginx
// (ngx_http_upstream_keepalive_module.c closes it after the last allowed
// request) it is never reused, and the request goes on a new connection.
var errConnRetired = errors.New("upstream keepalive connection reached keepalive_requests")

// dialer dials one upstream server; its dial method is the HostClient.Dial.
type dialer struct {
	network, address string
	timeout          time.Duration
	maxRequests      int
}

func (d *dialer) dial(string) (net.Conn, error) {
	// No SO_KEEPALIVE on upstream sockets (Go's dialer turns it on by
	// default, three setsockopt calls per connection): nginx's
	// proxy_socket_keepalive is off by default too.
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: -1}
	c, err := nd.Dial(d.network, d.address)
	if err != nil {
		return nil, &dialError{err: err}
	}
	tc := &trackedConn{Conn: c, maxRequests: d.maxRequests}
	if sc, ok := c.(syscall.Conn); ok {
		tc.raw, _ = sc.SyscallConn()
		tc.peek = newPeeker()
	}
	return tc, nil
}

// trackedConn finds request boundaries on a pooled connection (the first
// Write after a Read starts a new request) to count requests and to detect
// connections closed by the backend while idle. fasthttp uses a connection
// from one goroutine at a time, so the fields need no locking.
type trackedConn struct {
	net.Conn
	raw         syscall.RawConn
	peek        *peeker // made once per connection: no allocation per request
	readSeen    bool
	requests    int
	maxRequests int
}

func (c *trackedConn) Read(b []byte) (int, error) {
	c.readSeen = true
	return c.Conn.Read(b)
}

func (c *trackedConn) Write(b []byte) (int, error) {
	if c.requests == 0 || c.readSeen {
		// First write of a request.
		c.readSeen = false
		if c.requests >= c.maxRequests {
			return 0, errConnRetired
		}
		if c.requests > 0 && c.raw != nil && c.peek.closed(c.raw) {
			return 0, errStaleConn
		}
		c.requests++
	}
	return c.Conn.Write(b)
}

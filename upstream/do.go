package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"edgeproxy/metrics"

	"github.com/valyala/fasthttp"
)

// NextUpstream is proxy_next_upstream, proxy_next_upstream_tries and
// proxy_next_upstream_timeout. The zero value is "off": no retries. nginx's
// default ("error timeout") is DefaultNextUpstream.
type NextUpstream struct {
	Error         bool // connect/send/read errors, premature close
	Timeout       bool // connect or read timed out
	InvalidHeader bool // empty or invalid response header, too big header
	HTTP500       bool
	HTTP502       bool
	HTTP503       bool
	HTTP504       bool
	HTTP403       bool
	HTTP404       bool
	HTTP429       bool
	// NonIdempotent allows retrying POST, LOCK and PATCH after the request
	// was sent to a server.
	NonIdempotent bool
	// Off disables retries regardless of the other fields.
	Off bool
	// Tries caps the number of attempts (proxy_next_upstream_tries); 0
	// means the number of servers.
	Tries int
	// TimeLimit caps the time since the first attempt after which no new
	// attempt starts (proxy_next_upstream_timeout); 0 means no limit.
	TimeLimit time.Duration
}

// DefaultNextUpstream is nginx's default `proxy_next_upstream error timeout`.
var DefaultNextUpstream = NextUpstream{Error: true, Timeout: true}

// failure kinds, nginx's NGX_HTTP_UPSTREAM_FT_* for transport failures.
type failKind uint8

const (
	ftError failKind = iota + 1
	ftTimeout
	ftInvalidHeader
)

func (nu *NextUpstream) allowsFailure(k failKind) bool {
	switch k {
	case ftError:
		return nu.Error
	case ftTimeout:
		return nu.Timeout
	case ftInvalidHeader:
		return nu.InvalidHeader
	}
	return false
}

// allowsStatus reports whether status is listed, i.e. the
// ngx_http_upstream_next_errors entry whose mask is set.
func (nu *NextUpstream) allowsStatus(status int) bool {
	switch status {
	case 500:
		return nu.HTTP500
	case 502:
		return nu.HTTP502
	case 503:
		return nu.HTTP503
	case 504:
		return nu.HTTP504
	case 403:
		return nu.HTTP403
	case 404:
		return nu.HTTP404
	case 429:
		return nu.HTTP429
	}
	return false
}

// Attempt is one entry of $upstream_addr / $upstream_status /
// $upstream_response_time.
type Attempt struct {
	// Addr is the server address, or the group name when no live server
	// was left (nginx logs the upstream name then).
	Addr string
	// Status is the upstream response status, or 502/504 for a failed
	// attempt, as nginx stores in u->state->status.
	Status int
	// ResponseTime is the attempt's duration; negative means unknown
	// (printed "-"), as for the "no live upstreams" entry.
	ResponseTime time.Duration
	// Err is the transport error of a failed attempt.
	Err error
}

// Result describes a Do call. The zero value is ready to use; reuse one
// Result per request (or per connection goroutine) to avoid allocations, Do
// resets it. A Result must not be shared by concurrent Do calls.
type Result struct {
	Attempts []Attempt
	// Status is what the client gets: the upstream status, or 502/504 when
	// no upstream response is available (then Do returns an *Error).
	Status int
	// Peer is the server whose response is in resp; nil on error.
	Peer *Peer
}

// AppendUpstreamAddr appends $upstream_addr: "127.0.0.1:8001, 127.0.0.1:8002".
func (r *Result) AppendUpstreamAddr(dst []byte) []byte {
	for i, a := range r.Attempts {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, a.Addr...)
	}
	return dst
}

// AppendUpstreamStatus appends $upstream_status: "502, 200".
func (r *Result) AppendUpstreamStatus(dst []byte) []byte {
	for i, a := range r.Attempts {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		if a.Status == 0 {
			dst = append(dst, '-')
		} else {
			dst = strconv.AppendInt(dst, int64(a.Status), 10)
		}
	}
	return dst
}

// AppendUpstreamResponseTime appends $upstream_response_time in nginx's
// "%T.%03M" format: "0.001, 0.004"; unknown times print "-".
func (r *Result) AppendUpstreamResponseTime(dst []byte) []byte {
	for i, a := range r.Attempts {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		if a.ResponseTime < 0 {
			dst = append(dst, '-')
			continue
		}
		ms := a.ResponseTime.Milliseconds()
		dst = strconv.AppendInt(dst, ms/1000, 10)
		dst = append(dst, '.')
		frac := ms % 1000
		if frac < 100 {
			dst = append(dst, '0')
		}
		if frac < 10 {
			dst = append(dst, '0')
		}
		dst = strconv.AppendInt(dst, frac, 10)
	}
	return dst
}

// Error is returned by Do when no upstream response can be relayed. Status
// is the response nginx would generate: 502, or 504 after a timeout.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string {
	return "upstream: " + strconv.Itoa(e.Status) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Do sends req to the group with nginx's ngx_http_upstream_connect /
// ngx_http_upstream_next logic and fills resp with the relayed response.
//
// Retries follow nu (nil means DefaultNextUpstream): a failed attempt is
// retried on the next server chosen by the balancer if its kind is listed,
// tries remain (servers, or nu.Tries), nu.TimeLimit has not passed, and the
// request is not POST/LOCK/PATCH already sent (unless nu.NonIdempotent) nor
// a body stream already consumed. Listed HTTP statuses are retried only if
// another try remains; otherwise the response is relayed. Every failed
// attempt (and retried 5xx/429, not 403/404) counts towards max_fails.
//
// Errors: connect refused/reset, premature close, invalid or too big header
// → 502; connect or read timeout → 504; no live upstreams → 502. They are
// returned as *Error (errors.Is(err, ErrNoLiveUpstreams) for the latter),
// with res.Status set; resp is then undefined. ctx must be non-nil; its cancellation (the client
// went away) stops before the next attempt and returns ctx.Err(); a ctx
// deadline bounds each attempt.
//
// If the group has no Keepalive, Do sets "Connection: close" on req, since
// nginx never reuses upstream connections without the keepalive directive.
// Do also disables fasthttp's default Content-Type on resp. Safe for
// concurrent use with distinct req/resp/res.
func (g *Group) Do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, nu *NextUpstream, hashKey []byte, clientIP netip.Addr, res *Result) error {
	if nu == nil {
		nu = &DefaultNextUpstream
	}
	res.Attempts = res.Attempts[:0]
	res.Status = 0
	res.Peer = nil
	if g.spec.Keepalive == 0 {
		req.SetConnectionClose()
	}
	// ngx_http_upstream_init_round_robin_peer: tries = servers not down,
	// capped by proxy_next_upstream_tries.
	tries := g.tries
	if nu.Tries > 0 && tries > nu.Tries {
		tries = nu.Tries
	}
	nonIdempotent := isNonIdempotent(req.Header.Method())
	bodyStream := req.IsBodyStream()
	var rw Rewinder
	if bodyStream {
		// A body kept whole (in memory and a temporary file, as nginx
		// keeps client_body_temp files) can be sent again on the next
		// server; a one-shot stream cannot.
		if rw, _ = req.BodyStream().(Rewinder); rw != nil {
			bodyStream = false
		}
	}
	deadline, hasDeadline := ctx.Deadline()
	var t Tried
	start := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := g.Pick(hashKey, clientIP, &t)
		if err != nil {
			// ngx_http_upstream_connect: NGX_BUSY → "no live upstreams",
			// FT_NOLIVE is never in the next_upstream mask → 502.
			res.Attempts = append(res.Attempts, Attempt{Addr: g.name, Status: fasthttp.StatusBadGateway, ResponseTime: -1, Err: err})
			res.Status = fasthttp.StatusBadGateway
			return &Error{Status: fasthttp.StatusBadGateway, Err: err}
		}
		if rw != nil && len(res.Attempts) > 0 {
			rw.Rewind()
			req.SetBodyStream(rw, rw.Size())
		}
		attemptStart := time.Now()
		err = p.do(req, resp, hasDeadline, deadline, bodyStream, rw)
		elapsed := time.Since(attemptStart)
		p.lat.Observe(metrics.ShardOfTime(attemptStart), elapsed)
		if g.single {
			tries = 0 // free_round_robin_peer: peers->single → pc->tries = 0
		} else if tries > 0 {
			tries--
		}
		timeUp := nu.TimeLimit > 0 && time.Since(start) >= nu.TimeLimit
		if err == nil {
			status := resp.StatusCode()
			res.Attempts = append(res.Attempts, Attempt{Addr: p.addr, Status: status, ResponseTime: elapsed})
			// ngx_http_upstream_test_next: retry a listed status only
			// while another try remains ("u->peer.tries > 1" before free).
			if !nu.Off && nu.allowsStatus(status) && tries > 0 && !timeUp &&
				(!nonIdempotent || nu.NonIdempotent) && !bodyStream {
				// ngx_http_upstream_next: 403/404 are NGX_PEER_NEXT, the
				// others NGX_PEER_FAILED.
				g.Done(p, status != 403 && status != 404)
				continue
			}
			// ngx_http_upstream_finalize_request frees with state 0.
			g.Done(p, false)
			res.Status = status
			res.Peer = p
			return nil
		}
		kind, sent := classify(err)
		status := fasthttp.StatusBadGateway
		if kind == ftTimeout {
			status = fasthttp.StatusGatewayTimeout
		}
		g.Done(p, true)
		res.Attempts = append(res.Attempts, Attempt{Addr: p.addr, Status: status, ResponseTime: elapsed, Err: err})
		if nu.Off || tries == 0 || !nu.allowsFailure(kind) || timeUp ||
			(sent && nonIdempotent && !nu.NonIdempotent) || (sent && bodyStream) ||
			(bodyStream && errors.Is(err, errStaleConn)) {
			res.Status = status
			return &Error{Status: status, Err: err}
		}
	}
}

// Rewinder is a request body stream (fasthttp.Request.SetBodyStream) that
// can be sent again from its first byte, so a failed attempt may be
// retried. It must not implement io.Closer (fasthttp closes those after
// one send). Size is the bodySize to pass to SetBodyStream (-1: chunked).
type Rewinder interface {
	io.Reader
	Rewind()
	Size() int
}

// do runs one attempt on p, transparently repeating it on a fresh
// connection when a pooled one turns out closed or retired before anything
// was written (bounded: the pool cannot hold stale connections forever).
func (p *Peer) do(req *fasthttp.Request, resp *fasthttp.Response, hasDeadline bool, deadline time.Time, bodyStream bool, rw Rewinder) error {
	var err error
	for i := 0; i < 8; i++ {
		if i > 0 && rw != nil {
			rw.Rewind()
			req.SetBodyStream(rw, rw.Size())
		}
		resp.Header.SetNoDefaultContentType(true)
		if hasDeadline {
			err = p.client.DoDeadline(req, resp, deadline)
		} else {
			err = p.client.Do(req, resp)
		}
		if err == nil || bodyStream {
			return err
		}
		switch {
		case errors.Is(err, errStaleConn):
			// The backend closed its idle connections (restart, idle
			// timeout); the others in the pool are likely dead too.
			p.client.CloseIdleConnections()
		case errors.Is(err, errConnRetired):
		default:
			return err
		}
	}
	return err
}

// classify maps a fasthttp error to nginx's failure kind and tells whether
// the request may have reached the server (u->request_sent).
func classify(err error) (kind failKind, sent bool) {
	var de *dialError
	if errors.As(err, &de) {
		if isTimeout(de.err) {
			return ftTimeout, false
		}
		return ftError, false
	}
	if errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, errStaleConn) || errors.Is(err, errConnRetired) {
		return ftError, false
	}
	if isTimeout(err) {
		return ftTimeout, true
	}
	var se *fasthttp.ErrSmallBuffer
	if errors.As(err, &se) {
		return ftInvalidHeader, true // "upstream sent too big header"
	}
	var ne net.Error
	var errno syscall.Errno
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.As(err, &ne) || errors.As(err, &errno) || errors.Is(err, net.ErrClosed) {
		return ftError, true
	}
	// Anything else is a response fasthttp could not parse: nginx's
	// "upstream sent invalid header" (NGX_HTTP_UPSTREAM_FT_INVALID_HEADER).
	return ftInvalidHeader, true
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// isNonIdempotent is nginx's NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH test
// in ngx_http_upstream_next.
func isNonIdempotent(m []byte) bool {
	return bytes.Equal(m, []byte("POST")) || bytes.Equal(m, []byte("PATCH")) || bytes.Equal(m, []byte("LOCK"))
}

package pipeline

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"edgeproxy/proxy"
	"edgeproxy/snapshot"
	"edgeproxy/upstream"
)

// tunnelCall is the upgrade part of an upstream call: fasthttp's client
// cannot carry a 101, so an Upgrade request goes over a raw connection and,
// when the app switches protocols, the client and app connections are
// spliced (WebSocket).
type tunnelCall struct {
	on     bool
	up     net.Conn
	early  []byte // bytes the app sent right after its 101
	resp   *http.Response
	body   []byte
	status int
}

// wantsUpgrade reports whether this request should be tunnelled: the client
// asks for a protocol upgrade and the location passes Upgrade upstream
// (`proxy_set_header Upgrade $http_upgrade;`), as nginx requires.
func (c *Conn) wantsUpgrade(loc *snapshot.Location) bool {
	if len(c.w.req.Upgrade()) == 0 || c.w.x.errorPage {
		return false
	}
	pc := &loc.ProxyConf
	for i, n := range pc.SetNames {
		if strings.EqualFold(n, "upgrade") {
			x := &c.w.x
			x.scratch = c.eval(x.scratch[:0], &pc.SetValues[i])
			return len(x.scratch) > 0
		}
	}
	return false
}

// dispatchTunnel runs the upgrade handshake with the app in a worker.
func (c *Conn) dispatchTunnel() {
	call := &c.call
	call.tun = tunnelCall{on: true}
	call.dispatched = true
	c.phase = phaseUpstream
	c.deadline.Store(0)
	settings := call.loc.Proxy.Settings
	job := call.job
	t := c.t
	timeouts := call.loc.ProxyConf.Timeouts
	workers.run(func() {
		call.err = handshake(settings, job, &call.tun, timeouts)
		if call.state.CompareAndSwap(callRunning, callDone) {
			t.WakeAfter(0)
			return
		}
		if call.tun.up != nil {
			call.tun.up.Close()
		}
		proxy.ReleaseJob(job)
	})
}

// handshake sends the upgrade request and reads the app's answer. Worker
// goroutine.
func handshake(s *proxy.Settings, job *proxy.Job, tc *tunnelCall, to proxy.Timeouts) error {
	g := s.Group()
	var tried upstream.Tried
	peer, err := g.Pick(job.HashKey, job.ClientIP, &tried)
	if err != nil {
		return &upstream.Error{Status: 502, Err: err}
	}
	network, addr := "tcp", peer.Addr()
	if strings.HasPrefix(addr, "unix:") {
		network, addr = "unix", addr[5:]
	}
	connectTO := to.Connect
	if connectTO <= 0 {
		connectTO = 60 * time.Second
	}
	up, err := net.DialTimeout(network, addr, connectTO)
	if err != nil {
		g.Done(peer, true)
		return &upstream.Error{Status: 502, Err: err}
	}
	req := job.Request()
	s.BuildRequest(req, job)
	readTO := to.Read
	if readTO <= 0 {
		readTO = 60 * time.Second
	}
	_ = up.SetDeadline(time.Now().Add(readTO))
	bw := bufio.NewWriter(up)
	if err := req.Write(bw); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		up.Close()
		g.Done(peer, true)
		return &upstream.Error{Status: 502, Err: err}
	}
	br := bufio.NewReader(up)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		up.Close()
		g.Done(peer, true)
		status := 502
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			status = 504
		}
		return &upstream.Error{Status: status, Err: err}
	}
	g.Done(peer, false)
	tc.resp, tc.status = resp, resp.StatusCode
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tc.body, _ = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		up.Close()
		return nil
	}
	_ = up.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		tc.early, _ = br.Peek(n)
		tc.early = bytes.Clone(tc.early)
	}
	tc.up = up
	return nil
}

// finishTunnel answers the client from the handshake: 101 and a splice, or
// the app's ordinary response.
func (c *Conn) finishTunnel() {
	call := &c.call
	tc := &call.tun
	x := &c.w.x
	if call.err != nil {
		status := 502
		if ue, ok := call.err.(*upstream.Error); ok {
			status = ue.Status
		}
		c.finalize(status)
		return
	}
	x.hdrs = x.hdrs[:0]
	for name, vals := range tc.resp.Header {
		switch strings.ToLower(name) {
		case "connection", "keep-alive", "transfer-encoding", "date", "server", "content-length", "content-type":
			continue
		}
		for _, v := range vals {
			x.hdrs = append(x.hdrs, name...)
			x.hdrs = append(x.hdrs, ": "...)
			x.hdrs = append(x.hdrs, v...)
			x.hdrs = append(x.hdrs, "\r\n"...)
		}
	}
	line := []byte(strconv.Itoa(tc.status) + " " + strings.TrimSpace(strings.TrimPrefix(tc.resp.Status, strconv.Itoa(tc.status))))
	if tc.status != http.StatusSwitchingProtocols {
		h := head{status: tc.status, statusLine: line, contentLength: int64(len(tc.body)), upstream: true}
		if ct := tc.resp.Header.Get("Content-Type"); ct != "" {
			h.contentType = []byte(ct)
		}
		c.writeHead(&h)
		if !x.head {
			c.writeBody(tc.body)
		}
		return
	}
	// 101: "Connection: upgrade" replaces keep-alive, as nginx writes it.
	x.hdrs = append([]byte("Upgrade: "+tc.resp.Header.Get("Upgrade")+"\r\n"), x.hdrs...)
	h := head{status: 101, statusLine: line, contentLength: -1, upstream: true, upgrade: true}
	c.writeHead(&h)
	c.logRequest(false)
	c.flush()
	c.phase = phaseTunnel
	c.deadline.Store(0)
	up, early := tc.up, tc.early
	tc.up = nil
	c.t.Tunnel(up, early)
}

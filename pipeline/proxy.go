package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"edgeproxy/cachestore"
	"edgeproxy/http1"
	"edgeproxy/proxy"
	"edgeproxy/snapshot"
	"edgeproxy/upstream"
)

// upstreamCall is a proxied request in flight. The loop fills the Job and
// hands it to a worker goroutine; the worker runs the blocking upstream
// exchange and wakes the loop, which writes the response. state arbitrates
// who releases the Job when the client goes away meanwhile.
type upstreamCall struct {
	job    *proxy.Job
	loc    *snapshot.Location
	err    error
	cancel context.CancelFunc
	state  atomic.Int32 // callRunning, callDone, callAbandoned
	cache  cacheCall
	tun    tunnelCall

	// bodyStreaming: the request body is sent to the app while it still
	// arrives (proxy_request_buffering off); the loop writes it into
	// job.ReqBody, shared with the worker.
	bodyStreaming bool
	dispatched    bool // a worker owns job until state leaves callRunning

	scrape *scrapeCall // a metrics scrape rendered off the loop (status.go), not an upstream call
}

// errClientGone ends a streamed request body when the client goes away.
var errClientGone = errors.New("client closed the connection before the end of the request body")

const (
	callRunning int32 = iota
	callDone
	callAbandoned
)

// startProxy prepares the upstream request of loc (ngx_http_proxy_handler).
// Everything the worker needs is copied into the Job, and the request head
// is copied into the work so the response can still be built after the
// borrowed input buffer is gone.
func (c *Conn) startProxy(loc *snapshot.Location) {
	x := &c.w.x
	r := &c.w.req
	p := loc.Proxy
	c.w.headCopy = append(c.w.headCopy[:0], r.HeadBytes()...)
	r.Rebase(c.w.headCopy)

	job := proxy.AcquireJob()
	job.Method = append(job.Method[:0], r.Method()...)
	job.RequestURI = append(job.RequestURI[:0], r.URI()...)
	job.URI = append(job.URI[:0], x.uri...)
	job.Args = append(job.Args[:0], x.args...)
	job.URIChanged = x.internal
	if c.remote.IsValid() {
		job.ClientIP = c.remote.Addr().Unmap()
	}
	if p.HashKey != nil {
		job.HashKey = c.eval(job.HashKey[:0], p.HashKey)
	}
	for i, n := 0, r.NumHeaders(); i < n; i++ {
		name, value := r.HeaderAt(i)
		if loc.Cache.Zone != nil && cacheStripsHeader(name) {
			continue // cache hook: see cacheStripsHeader
		}
		job.AddHeader(name, value)
	}
	addCacheHeaders(job, &c.call.cache) // cache hook: proxy_cache_revalidate
	for i := range p.SetValues {
		x.scratch = c.eval(x.scratch[:0], &p.SetValues[i])
		job.AddSetValue(x.scratch)
	}
	if c.call.cache.zone != nil && loc.Cache.ConvertHead && r.MethodID() == http1.MethodHEAD {
		// proxy_cache_convert_head: fetch the full response to cache it.
		job.Method = append(job.Method[:0], "GET"...)
	}
	call := &c.call
	call.job, call.loc, call.err = job, loc, nil
	call.dispatched, call.bodyStreaming = false, false
	call.state.Store(callRunning)
	c.proxying = true

	if c.wantsUpgrade(loc) {
		c.dispatchTunnel()
		return
	}
	if x.errorPage {
		// error_page redirects become GET (HEAD stays HEAD) and carry no
		// body, as in ngx_http_send_error_page.
		if r.MethodID() != http1.MethodHEAD {
			job.Method = append(job.Method[:0], "GET"...)
		}
		c.dispatch()
		return
	}
	if r.Chunked() || r.ContentLength() > 0 {
		job.ReqBody.Reset(loc.ClientBodyBuffer, loc.ClientBodyTemp, -1)
		c.collecting = true
		// proxy_request_buffering off streams the body as it arrives; a
		// chunked body is still buffered unless the app speaks HTTP/1.1
		// (nginx's rule: HTTP/1.0 has no chunked requests).
		if loc.ProxyConf.NoReqBuffer && (!r.Chunked() || p.Settings.HTTP11()) {
			job.ReqBody.Share()
			job.ContentLength = r.ContentLength()
			if r.Chunked() {
				job.ContentLength = -1
			}
			call.bodyStreaming = true
			c.dispatch()
		}
		// Otherwise (proxy_request_buffering on) the whole body is read
		// first, so a slow client never holds an application worker.
		return
	}
	c.dispatch()
}

// spoolBody appends request body bytes to the job's spool; false means the
// temporary file could not be written (the request then fails with 500,
// as nginx's does when it cannot write client_body_temp).
func (c *Conn) spoolBody(b []byte) bool {
	_, err := c.call.job.ReqBody.Write(b)
	return err == nil
}

// endBody is called when the whole request body has arrived.
func (c *Conn) endBody() {
	call := &c.call
	if call.bodyStreaming {
		call.job.ReqBody.CloseWrite(nil)
		call.bodyStreaming = false
		c.collecting = false
		if c.phase == phaseUpstream {
			// From now on the upstream timeouts bound the exchange, not
			// client_body_timeout.
			c.deadline.Store(0)
		}
		return
	}
	c.dispatch()
}

// dispatch hands the job to a worker goroutine.
func (c *Conn) dispatch() {
	call := &c.call
	if c.collecting && !call.bodyStreaming {
		call.job.ContentLength = call.job.ReqBody.Len()
		call.job.ReqBody.CloseWrite(nil)
		c.collecting = false
	}
	c.phase = phaseUpstream
	call.dispatched = true
	if !call.bodyStreaming {
		c.deadline.Store(0) // upstream timeouts bound this phase
	}
	ctx, cancel := context.WithCancel(context.Background())
	call.cancel = cancel
	settings := call.loc.Proxy.Settings
	job := call.job
	t := c.t
	workers.run(func() {
		cl := &call.cache
		release, served := cacheBefore(cl)
		var err error
		if !served {
			err = proxy.Do(ctx, settings, job)
			if err == nil {
				cacheAfter(cl, job, release != nil)
			}
		}
		if release != nil {
			release()
		}
		cancel()
		call.err = err
		if call.state.CompareAndSwap(callRunning, callDone) {
			t.WakeAfter(0)
			return
		}
		// The client went away (Closed): nobody else will release it.
		proxy.ReleaseJob(job)
	})
}

// abandonCall is called when the connection closes with a call in flight.
func (c *Conn) abandonCall() {
	if !c.proxying {
		return
	}
	call := &c.call
	if call.bodyStreaming {
		// The worker may be blocked reading the body: end it with an
		// error so the app never takes a cut body for a whole one.
		call.job.ReqBody.CloseWrite(errClientGone)
		call.bodyStreaming = false
	}
	if !call.dispatched {
		// Still reading the request body (buffered): no worker has it.
		call.cache.dropCacheClaim() // cache hook: no worker will end it
		proxy.ReleaseJob(call.job)
	} else if call.state.CompareAndSwap(callRunning, callAbandoned) {
		if call.cancel != nil {
			call.cancel()
		}
	} else if call.state.Load() == callDone {
		if call.tun.up != nil {
			call.tun.up.Close()
			call.tun.up = nil
		}
		proxy.ReleaseJob(call.job)
	}
	call.dispatched = false
	c.proxying, c.collecting = false, false
	call.job = nil
}

// callReady reports whether the worker has finished.
func (c *Conn) callReady() bool { return c.call.state.Load() == callDone }

// finishProxy writes the upstream response, or the error page for a failed
// exchange (502 for refused/reset/invalid, 504 for timeouts), as nginx does.
func (c *Conn) finishProxy() {
	if c.call.scrape != nil {
		c.finishScrape()
		return
	}
	call := &c.call
	job := call.job
	x := &c.w.x
	loc := call.loc
	x.loc = loc
	c.proxying = false
	keep := false
	defer func() {
		if !keep {
			proxy.ReleaseJob(job)
			call.job = nil
		}
	}()
	x.upstreamAddr = job.Result.AppendUpstreamAddr(x.upstreamAddr[:0])
	x.upstreamStatus = job.Result.AppendUpstreamStatus(x.upstreamStatus[:0])
	x.upstreamTime = job.Result.AppendUpstreamResponseTime(x.upstreamTime[:0])
	if call.bodyStreaming {
		// The app answered before the end of the request body: the rest
		// is read and discarded (afterResponse).
		call.bodyStreaming = false
		c.collecting = false
	}
	if call.tun.on {
		call.tun.on = false
		c.finishTunnel()
		return
	}
	cl := &call.cache
	if c.cacheServe() { // cache hook: lock waiters, revalidation, 304
		return
	}
	_, timedOut := call.err.(*upstream.Error)
	if timedOut {
		timedOut = call.err.(*upstream.Error).Status == 504
	}
	if staleFor(cl, call.err != nil, timedOut, job.Status) {
		x.cacheStatus = "STALE"
		c.serveCached(cl.stale)
		return
	}
	if call.err != nil {
		status := job.Status
		if ue, ok := call.err.(*upstream.Error); ok {
			status = ue.Status
		}
		if status < 500 {
			status = 502
		}
		c.logUpstreamError(call.err, status, job)
		c.finalize(status)
		return
	}
	if loc.Proxy.Settings.Intercepts(job.Status, loc.ErrorPages[job.Status] != nil) {
		c.finalize(job.Status)
		return
	}
	h := &job.Head
	rate := accelLimitRate(h.AccelLimitRate, loc)
	if (job.Streaming || job.RespBody.Spilled() || rate > 0) && len(h.AccelRedirect) == 0 {
		// Unbuffered (proxy_buffering off, X-Accel-Buffering: no), or
		// larger than the memory buffers: a relay sends it with
		// back-pressure and owns the job from now on.
		if c.startRelay(job, rate) {
			keep = true
			call.job = nil
			return
		}
	}
	if len(h.AccelRedirect) > 0 && loc.Cache.Ignore&cachestore.IgnoreXAccelRedirect == 0 {
		// X-Accel-Redirect: the app hands the response to an (internal)
		// location, e.g. a protected download served with sendfile
		// (ngx_http_upstream_process_headers). The method becomes GET.
		x.scratch = append(x.scratch[:0], h.AccelRedirect...)
		x.forceGET = true
		// nginx keeps the app's Content-Type, Content-Disposition and
		// Set-Cookie on the redirected response (the "redirect" flag of
		// ngx_http_upstream_headers_in).
		x.accelType = append(x.accelType[:0], h.ContentType...)
		x.accelHdrs = x.accelHdrs[:0]
		for rest := h.Lines; len(rest) > 0; {
			i := bytes.Index(rest, []byte("\r\n"))
			if i < 0 {
				break
			}
			line := rest[:i+2]
			rest = rest[i+2:]
			if hasPrefixFold(line, "content-disposition:") || hasPrefixFold(line, "set-cookie:") {
				x.accelHdrs = append(x.accelHdrs, line...)
			}
		}
		if len(x.scratch) > 0 && x.scratch[0] == '@' {
			if idx, ok := loc.Server.Locations.Named(string(x.scratch[1:])); ok {
				x.internal = true
				c.runLocation(loc.Server.Locs[idx])
				return
			}
		}
		c.internalRedirect(append(x.path[:0], x.scratch...))
		return
	}
	x.hdrs = append(x.hdrs[:0], h.Lines...)
	body := job.ResponseBody()
	hd := head{status: job.Status, statusLine: h.StatusLine, contentType: h.ContentType, contentLength: int64(len(body)),
		location: h.Location, noServer: h.HasServer, noDate: h.HasDate, upstream: true}
	if job.Status == 204 || job.Status == 304 || job.Status < 200 {
		hd.contentLength = -1
		body = nil
	} else if x.head {
		hd.contentLength = int64(h.ContentLength)
		body = nil
	}
	if hd.contentType != nil && body != nil {
		vary, gz := c.gzipCheck(job.Status, hd.contentType, hd.contentLength, bytes.Contains(h.Lines, []byte("Content-Encoding:")))
		if gz {
			c.writeGzipped(&hd, body) // compresses into the exchange's buffer
			return
		}
		hd.vary = vary
	}
	c.writeHead(&hd)
	if len(body) > 0 {
		// The job's body is released right after: copy it out.
		c.w.out = append(c.w.out, body...)
		x.bodySent = int64(len(body))
	}
}

// proxyVar appends $proxy_host, $proxy_port and $proxy_add_x_forwarded_for.
func (c *Conn) proxyVar(dst []byte, v snapshot.VarID) []byte {
	loc := c.w.x.loc
	if loc == nil || loc.Proxy == nil {
		if v == snapshot.VarProxyAddXFF {
			return proxy.AppendAddXForwardedFor(dst, c.w.req.Header(hXFF), c.remote.Addr())
		}
		return dst
	}
	switch v {
	case snapshot.VarProxyHost:
		return append(dst, loc.Proxy.Settings.ProxyHost()...)
	case snapshot.VarProxyPort:
		return append(dst, loc.Proxy.Settings.ProxyPort()...)
	}
	return proxy.AppendAddXForwardedFor(dst, c.w.req.Header(hXFF), c.remote.Addr())
}

var hXFF = []byte("x-forwarded-for")

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && bytes.EqualFold(b[:len(p)], []byte(p))
}

// logUpstreamError writes nginx's error-log line for a failed upstream
// exchange.
func (c *Conn) logUpstreamError(err error, status int, job *proxy.Job) {
	x := &c.w.x
	if !c.errorLogOn(snapshot.LevelError) {
		return
	}
	msg := err.Error()
	switch {
	case status == 504:
		x.errBuf = append(x.errBuf, "upstream timed out (110: Connection timed out) while reading response header from upstream"...)
	case strings.Contains(msg, "connection refused"):
		x.errBuf = append(x.errBuf, "connect() failed (111: Connection refused) while connecting to upstream"...)
	case strings.Contains(msg, "no live upstreams"):
		x.errBuf = append(x.errBuf, "no live upstreams while connecting to upstream"...)
	default:
		x.errBuf = append(x.errBuf, "upstream prematurely closed connection while reading response header from upstream"...)
	}
	var u []byte
	if n := len(job.Result.Attempts); n > 0 {
		u = append(x.scratch[:0], "http://"...)
		u = append(u, job.Result.Attempts[n-1].Addr...)
		u = append(u, job.Request().RequestURI()...)
		x.scratch = u
	}
	c.errorLogEnd(u)
}

// startRelay writes the head of a response whose body is not whole in
// memory and hands the body to the transport (SendStream): the spooled part
// (memory, then the temporary file with sendfile), then what is still in
// the upstream stream, chunk by chunk as the app sends it (server-sent
// events, streaming responses). It returns false when there is no body to
// send (HEAD, 204, 304, 1xx).
func (c *Conn) startRelay(job *proxy.Job, rate int64) bool {
	x := &c.w.x
	h := &job.Head
	if x.head || job.Status == 204 || job.Status == 304 || job.Status < 200 {
		return false
	}
	x.hdrs = append(x.hdrs[:0], h.Lines...)
	hd := head{status: job.Status, statusLine: h.StatusLine, contentType: h.ContentType, contentLength: -1,
		location: h.Location, noServer: h.HasServer, noDate: h.HasDate, upstream: true}
	_, minor := c.w.req.Proto()
	switch {
	case !job.Streaming:
		hd.contentLength = job.RespBody.Len()
	case h.ContentLength >= 0:
		hd.contentLength = int64(h.ContentLength)
	case minor >= 1:
		hd.chunked = true
	default:
		c.closeNext = true // HTTP/1.0: the end of the body is the close
	}
	rl := &relay{job: job, rate: rate}
	if hd.contentType != nil {
		// Compressed as it streams (gzip, or brotli/zstd): the length
		// is unknown then, as in nginx.
		vary, gz := c.gzipCheck(job.Status, hd.contentType, hd.contentLength, bytes.Contains(h.Lines, []byte("Content-Encoding:")))
		hd.vary = vary
		if gz {
			hd.gzip, hd.contentLength, hd.chunked = true, -1, minor >= 1
			if !hd.chunked {
				c.closeNext = true
			}
			rl.enc = x.enc
			switch x.enc {
			case encGzip:
				rl.level = x.loc.Gzip.Level
			case encBrotli:
				rl.level = x.loc.Brotli.Level
			case encZstd:
				rl.level = x.loc.Zstd.Level
			}
		}
	}
	rl.chunked = hd.chunked
	c.writeHead(&hd)
	if hd.contentLength >= 0 {
		x.bodySent = hd.contentLength
	}
	c.flush()
	c.proxying = false
	c.phase = phaseSending
	c.t.SendStream(rl)
	return true
}

// relay is the body of an upstream response sent by the transport's
// SendStream goroutine: it owns the job and releases it in Close.
type relay struct {
	job     *proxy.Job
	chunked bool
	enc     uint8 // encNone, or the coding the body is compressed with
	level   int
	rate    int64 // X-Accel-Limit-Rate: bytes per second, 0 = unlimited
	hdr     [20]byte
}

// accelLimitRate is the app's X-Accel-Limit-Rate in bytes per second (0:
// none, invalid, or ignored by proxy_ignore_headers), as
// ngx_http_upstream_process_limit_rate reads it.
func accelLimitRate(v []byte, loc *snapshot.Location) int64 {
	if len(v) == 0 || loc.Cache.Ignore&cachestore.IgnoreXAccelLimitRate != 0 {
		return 0
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// rateWriter paces writes to rate bytes per second (nginx's limit_rate:
// no more than rate × (seconds elapsed + 1) sent at any time), writing
// at most a tenth of a second's worth at a time so the pace is smooth.
type rateWriter struct {
	w     io.Writer
	rate  int64
	start time.Time
	sent  int64
}

func (r *rateWriter) Write(p []byte) (int, error) {
	if r.start.IsZero() {
		r.start = time.Now()
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), int(max(r.rate/10, 1)))
		m, err := r.w.Write(p[:k])
		n += m
		r.sent += int64(m)
		if err != nil {
			return n, err
		}
		p = p[k:]
		// nginx's write filter allows rate × (elapsed seconds + 1): the
		// first second's worth goes out at once.
		if ahead := time.Duration((r.sent-r.rate)*int64(time.Second)/r.rate) - time.Since(r.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return n, nil
}

var errRelayRead = errors.New("relay: use WriteTo")

// Read is not used: both transports call WriteTo.
func (r *relay) Read([]byte) (int, error) { return 0, errRelayRead }

// WriteTo sends the body to w. An error from the app midway is returned so
// the transport closes the connection: a cut response must never look
// whole (nginx closes too, and a chunked one lacks its last chunk).
func (r *relay) WriteTo(w io.Writer) (int64, error) {
	if r.rate > 0 {
		// A plain writer: paced, and without sendfile (nginx's
		// limit_rate also caps each sendfile call).
		w = &rateWriter{w: struct{ io.Writer }{w}, rate: r.rate}
	}
	if r.enc != encNone {
		return r.writeCompressed(w)
	}
	var total int64
	job := r.job
	if mem := job.RespBody.Mem(); len(mem) > 0 {
		n, err := r.write(w, mem)
		total += n
		if err != nil {
			return total, err
		}
	}
	if f, n := job.RespBody.File(); n > 0 {
		if r.chunked {
			if _, err := w.Write(r.chunkHeader(n)); err != nil {
				return total, err
			}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return total, err
		}
		k, err := io.Copy(w, io.LimitReader(f, n)) // sendfile on plain TCP
		total += k
		if err == nil && k < n {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return total, err
		}
		if r.chunked {
			if _, err := w.Write([]byte("\r\n")); err != nil {
				return total, err
			}
		}
	}
	if job.Streaming {
		if stream := job.Response().BodyStream(); stream != nil {
			// One write per piece the app sends, framed in place: room
			// for the chunk header before and the CRLF after.
			const pre = 18
			buf := make([]byte, pre+32<<10+2)
			for {
				n, err := stream.Read(buf[pre : len(buf)-2])
				if n > 0 {
					out := buf[pre : pre+n]
					if r.chunked {
						h := r.chunkHeader(int64(n))
						start := pre - len(h)
						copy(buf[start:], h)
						buf[pre+n], buf[pre+n+1] = '\r', '\n'
						out = buf[start : pre+n+2]
					}
					if _, werr := w.Write(out); werr != nil {
						return total, werr
					}
					total += int64(n)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					return total, err
				}
			}
		}
	}
	if r.chunked {
		if _, err := w.Write([]byte("0\r\n\r\n")); err != nil {
			return total, err
		}
	}
	return total, nil
}

// write sends b, as one chunk when chunked.
func (r *relay) write(w io.Writer, b []byte) (int64, error) {
	if r.chunked {
		if _, err := w.Write(r.chunkHeader(int64(len(b)))); err != nil {
			return 0, err
		}
	}
	n, err := w.Write(b)
	if err == nil && r.chunked {
		_, err = w.Write([]byte("\r\n"))
	}
	return int64(n), err
}

func (r *relay) chunkHeader(n int64) []byte {
	b := strconv.AppendInt(r.hdr[:0], n, 16)
	return append(b, "\r\n"...)
}

// Close releases the job (the upstream stream, the temporary file).
func (r *relay) Close() error {
	proxy.ReleaseJob(r.job)
	return nil
}

// compressor is a streaming encoder: gzip, brotli or zstd.
type compressor interface {
	io.WriteCloser
	Flush() error
}

func newCompressor(enc uint8, level int, w io.Writer) compressor {
	switch enc {
	case encBrotli:
		return brotli.NewWriterLevel(w, level)
	case encZstd:
		z, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1))
		return z
	}
	z, _ := gzip.NewWriterLevel(w, level)
	return z
}

// writeCompressed sends the body compressed as it arrives: what the app
// sends is flushed through the encoder piece by piece, so a stream
// (server-sent events) stays a stream; chunked framing or the connection's
// end delimits it.
func (r *relay) writeCompressed(w io.Writer) (int64, error) {
	job := r.job
	fw := &frameWriter{w: w, chunked: r.chunked}
	bw := bufio.NewWriterSize(fw, 32<<10)
	z := newCompressor(r.enc, r.level, bw)
	if mem := job.RespBody.Mem(); len(mem) > 0 {
		if _, err := z.Write(mem); err != nil {
			return fw.n, err
		}
	}
	if f, n := job.RespBody.File(); n > 0 {
		k, err := io.Copy(z, io.NewSectionReader(f, 0, n))
		if err == nil && k < n {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fw.n, err
		}
	}
	if job.Streaming {
		if stream := job.Response().BodyStream(); stream != nil {
			buf := make([]byte, 32<<10)
			for {
				n, err := stream.Read(buf)
				if n > 0 {
					if _, werr := z.Write(buf[:n]); werr != nil {
						return fw.n, werr
					}
					// Push what the app sent now (prompt flushes).
					if werr := z.Flush(); werr != nil {
						return fw.n, werr
					}
					if werr := bw.Flush(); werr != nil {
						return fw.n, werr
					}
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					return fw.n, err
				}
			}
		}
	}
	if err := z.Close(); err != nil {
		return fw.n, err
	}
	if err := bw.Flush(); err != nil {
		return fw.n, err
	}
	if r.chunked {
		if _, err := w.Write([]byte("0\r\n\r\n")); err != nil {
			return fw.n, err
		}
	}
	return fw.n, nil
}

// frameWriter writes each piece as one chunk (chunked) or as is, in one
// write per piece.
type frameWriter struct {
	w       io.Writer
	chunked bool
	buf     []byte
	n       int64
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	out := p
	if f.chunked {
		f.buf = strconv.AppendInt(f.buf[:0], int64(len(p)), 16)
		f.buf = append(f.buf, "\r\n"...)
		f.buf = append(f.buf, p...)
		f.buf = append(f.buf, "\r\n"...)
		out = f.buf
	}
	if _, err := f.w.Write(out); err != nil {
		return 0, err
	}
	f.n += int64(len(p))
	return len(p), nil
}

package proxy

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"edgeproxy/spool"
	"edgeproxy/upstream"
)

// Job is one proxied request: the evaluated inputs the pipeline fills on
// its event loop, and the outputs Do fills on a worker goroutine. Obtain
// Jobs with AcquireJob and return them with ReleaseJob; the zero value is
// also usable (ContentLength 0 then means "Content-Length: 0"). A Job
// belongs to one goroutine at a time: the loop fills it, hands it over,
// the worker runs Do, and the loop reads the outputs after the hand-back.
// All input byte slices are owned by the Job (fill them with append(x[:0],
// ...)); nothing refers to the loop's buffers.
type Job struct {
	// Method is the request method ($request_method or proxy_method).
	Method []byte
	// RequestURI is $request_uri as the client sent it (path and query).
	RequestURI []byte
	// URI is $uri: decoded and normalised, possibly changed by rewrite.
	URI []byte
	// Args is $args.
	Args []byte
	// URIChanged is nginx's !r->valid_unparsed_uri; see AppendUpstreamURI.
	URIChanged bool
	// RewriteBreak reports that `rewrite ... break` changed the URI in the
	// proxied location: the pass URI part is ignored (AppendRewrittenURI).
	RewriteBreak bool
	// ContentLength is $proxy_internal_body_length: the client's
	// Content-Length, or the length of a de-chunked body; -1 when the
	// request had no body framing (then no Content-Length is sent).
	// AcquireJob sets -1.
	ContentLength int64
	// Body is a whole request body held in memory (set directly by
	// callers that have one). The pipeline uses ReqBody instead.
	Body []byte
	// ReqBody is the request body as read from the client: in memory up to
	// client_body_buffer_size, then in a temporary file. With
	// proxy_request_buffering off it is Shared and still being written
	// while Do sends it (ContentLength -1 then means chunked upstream).
	ReqBody spool.Spool
	// ClientIP is the client address for ip_hash and X-Forwarded-For; an
	// invalid Addr for unix-socket clients.
	ClientIP netip.Addr
	// HashKey is the evaluated `hash` key of the upstream block, if any.
	HashKey []byte

	// Status is the client response status: the upstream status, or
	// 502/504 when Do fails with an *upstream.Error.
	Status int
	// Head is the composed response head (valid after a nil Do).
	Head ResponseHead
	// Result holds $upstream_addr, $upstream_status,
	// $upstream_response_time.
	Result upstream.Result
	// RespBody is the buffered upstream response body (proxy_buffering
	// on): whole in memory (ResponseBody), or spilled to a temporary file.
	RespBody spool.Spool
	// Streaming reports that Do left the body (or, when RespBody filled up
	// to proxy_max_temp_file_size, the rest of it) unread in
	// Response().BodyStream(): the caller relays it, then calls
	// Response().CloseBodyStream().
	Streaming bool

	hbuf   []byte // client header names and values
	hdrs   []span // pairs: name, value
	sbuf   []byte // proxy_set_header values
	svals  []span
	uriBuf []byte
	num    []byte
	req    *fasthttp.Request
	resp   *fasthttp.Response
	rdr    bodyReader
}

// bodyReader sends ReqBody upstream as a fasthttp body stream that
// upstream.Group.Do may rewind for a retry (upstream.Rewinder).
type bodyReader struct {
	spool.Reader
	size int
}

func (b *bodyReader) Size() int { return b.size }

type span struct{ off, n int32 }

var jobPool = sync.Pool{New: func() any { return &Job{ContentLength: -1} }}

// AcquireJob returns an empty Job from the pool. Any goroutine may call it.
func AcquireJob() *Job { return jobPool.Get().(*Job) }

// ReleaseJob resets j and returns it to the pool; j and every slice
// obtained from it (Body, Head) must not be used afterwards. Any goroutine
// may call it, once the job is no longer shared.
func ReleaseJob(j *Job) {
	j.Reset()
	jobPool.Put(j)
}

// maxPooledBody bounds the response/request body capacity kept in pooled
// Jobs so that one huge response does not pin memory forever.
const maxPooledBody = 1 << 20

// Reset clears inputs and outputs, keeping allocated buffers.
func (j *Job) Reset() {
	j.Method, j.RequestURI, j.URI, j.Args = j.Method[:0], j.RequestURI[:0], j.URI[:0], j.Args[:0]
	j.URIChanged, j.RewriteBreak = false, false
	j.ContentLength = -1
	if cap(j.Body) > maxPooledBody {
		j.Body = nil
	}
	j.Body = j.Body[:0]
	j.ReqBody.Reset(0, "", 0)
	j.RespBody.Reset(0, "", 0)
	j.Streaming = false
	j.rdr = bodyReader{}
	j.ClientIP = netip.Addr{}
	j.HashKey = j.HashKey[:0]
	j.Status = 0
	j.hbuf, j.hdrs = j.hbuf[:0], j.hdrs[:0]
	j.sbuf, j.svals = j.sbuf[:0], j.svals[:0]
	if j.req != nil {
		j.req.Reset()
	}
	if j.resp != nil {
		_ = j.resp.CloseBodyStream()
		if cap(j.resp.Body()) > maxPooledBody {
			j.resp = nil
		} else {
			j.resp.Reset()
		}
	}
	j.Head.ContentType, j.Head.Location, j.Head.StatusLine = nil, nil, nil
	j.Head.Lines = j.Head.Lines[:0]
}

// AddHeader appends one client request header (name as received), in
// the order received; the bytes are copied.
func (j *Job) AddHeader(name, value []byte) {
	j.hdrs = append(j.hdrs, j.put(name), j.put(value))
}

// AddSetValue appends the evaluated value of the next proxy_set_header
// directive; call it once per Config.SetHeaders entry, in order (an entry
// whose value is the empty literal may be given as nil). The bytes are
// copied.
func (j *Job) AddSetValue(value []byte) {
	off := len(j.sbuf)
	j.sbuf = append(j.sbuf, value...)
	j.svals = append(j.svals, span{int32(off), int32(len(value))})
}

func (j *Job) put(b []byte) span {
	off := len(j.hbuf)
	j.hbuf = append(j.hbuf, b...)
	return span{int32(off), int32(len(b))}
}

// NumHeaders returns the number of client headers added.
func (j *Job) NumHeaders() int { return len(j.hdrs) / 2 }

// Header returns the i-th client header; valid until the next AddHeader.
func (j *Job) Header(i int) (name, value []byte) {
	k, v := j.hdrs[2*i], j.hdrs[2*i+1]
	return j.hbuf[k.off : k.off+k.n], j.hbuf[v.off : v.off+v.n]
}

func (j *Job) setValue(i int) []byte {
	if i >= len(j.svals) {
		return nil
	}
	v := j.svals[i]
	return j.sbuf[v.off : v.off+v.n]
}

// Request returns the Job's upstream request, acquired on first use and
// kept with the Job (BuildRequest fills it). Hook for callers that send it
// themselves (streaming bodies, WebSocket upgrades).
func (j *Job) Request() *fasthttp.Request {
	if j.req == nil {
		j.req = fasthttp.AcquireRequest()
	}
	return j.req
}

// Response returns the Job's upstream response, acquired on first use. It
// holds the upstream body after Do (see Body).
func (j *Job) Response() *fasthttp.Response {
	if j.resp == nil {
		j.resp = fasthttp.AcquireResponse()
	}
	return j.resp
}

// ResponseBody returns the upstream response body after a successful Do
// when it is whole in memory (not Streaming, not RespBody.Spilled()),
// valid until ReleaseJob. It is not copied.
func (j *Job) ResponseBody() []byte { return j.RespBody.Mem() }

// readBody reads the rest of the upstream body into RespBody, memory first
// and then the temporary file, as ngx_http_upstream_process_upstream does
// with proxy_buffering on. When the file limit is reached the rest stays in
// the stream and Streaming is set. An error means the upstream connection
// failed or closed before the end of the body: nothing has been sent to
// the client yet, so it becomes a 502. Called on the worker goroutine.
func (j *Job) readBody(b *Buffering) error {
	resp := j.resp
	j.RespBody.Reset(b.Mem, b.TempPath, b.MaxTempFile)
	stream := resp.BodyStream()
	if stream == nil {
		return nil
	}
	_, err := j.RespBody.Fill(stream, int64(j.Head.ContentLength))
	if err == spool.ErrFull {
		j.Streaming = true
		return nil
	}
	if err != nil {
		return err
	}
	if j.Head.ContentLength < 0 {
		// De-chunked or read until close: now the length is known.
		j.Head.ContentLength = int(j.RespBody.Len())
	}
	return resp.CloseBodyStream()
}

// BuildRequest fills req with the upstream request for job, as
// ngx_http_proxy_create_request does: request line "METHOD URI HTTP/1.x",
// then the merged header list (proxy_set_header values in config order,
// skipping empty ones, then nginx's defaults Host: $proxy_host,
// Connection: close, Content-Length), then the client's headers in order
// except those whose names appear in that list (including TE, Keep-Alive,
// Expect, Upgrade, Transfer-Encoding), then the body unless
// proxy_pass_request_body is off. Header names keep their spelling: fasthttp's
// special-header handling and normalisation are disabled, so it adds no
// User-Agent or Content-Type; it does rewrite Content-Length to the actual
// body length (and adds "Content-Length: 0" to a body-less POST/PUT).
// Called by the goroutine owning job and req.
func (s *Settings) BuildRequest(req *fasthttp.Request, job *Job) {
	req.Reset()
	req.Header.DisableNormalizing()
	req.Header.DisableSpecialHeader()
	req.Header.SetMethodBytes(job.Method)
	req.Header.SetProtocol(s.protocol)
	// fasthttp's client re-parses the request URI (HostClient calls
	// req.URI()) and re-serialises it from the parsed path; an
	// absolute-form URI keeps the path intact even when it starts with
	// "//" and without a Host header. The dummy host is never sent.
	u := append(job.uriBuf[:0], "http://u"...)
	if job.RewriteBreak {
		u = s.AppendRewrittenURI(u, job.URI, job.Args)
	} else {
		u = s.AppendUpstreamURI(u, job.RequestURI, job.URI, job.Args, job.URIChanged)
	}
	job.uriBuf = u
	req.SetRequestURIBytes(u)
	req.URI().DisablePathNormalizing = true

	for _, e := range s.headers {
		switch e.src {
		case srcUser:
			if v := job.setValue(e.index); len(v) > 0 {
				req.Header.AddBytesKV(e.nameB, v)
			}
		case srcProxyHost:
			req.Header.AddBytesKV(e.nameB, s.proxyHostB)
		case srcClose:
			req.Header.AddBytesKV(e.nameB, strClose)
		case srcContentLength:
			if job.ContentLength >= 0 {
				job.num = strconv.AppendInt(job.num[:0], job.ContentLength, 10)
				req.Header.AddBytesKV(e.nameB, job.num)
			}
		}
	}
	if s.passReqHeaders {
		for i := 0; i < len(job.hdrs); i += 2 {
			k, v := job.hdrs[i], job.hdrs[i+1]
			name := job.hbuf[k.off : k.off+k.n]
			if s.skipped(name) {
				continue
			}
			req.Header.AddBytesKV(name, job.hbuf[v.off:v.off+v.n])
		}
	}
	if !s.passReqBody {
		return
	}
	switch rb := &job.ReqBody; {
	case rb.IsShared() || rb.Spilled(): // shared first: Spilled is the writer's
		// Not (or not yet) whole in memory: sent from the spool, which a
		// retry can rewind (upstream.Rewinder).
		job.rdr = bodyReader{Reader: *rb.NewReader(), size: int(job.ContentLength)}
		req.SetBodyStream(&job.rdr, job.rdr.size)
	case rb.Len() > 0:
		req.SetBodyRaw(rb.Mem())
	case len(job.Body) > 0:
		req.SetBodyRaw(job.Body)
	}
}

var strClose = []byte("close")

func (s *Settings) skipped(name []byte) bool {
	for _, n := range s.skipB {
		if eqFold(name, n) {
			return true
		}
	}
	return false
}

// ErrNoGroup is returned by Do when the Settings have no upstream group.
var ErrNoGroup = errors.New("proxy: no upstream group bound to proxy_pass")

// Do proxies job through s's group: BuildRequest, upstream.Group.Do with
// proxy_next_upstream retries, then ComposeResponse into job.Head. On
// success job.Status is the upstream status and the body is
// job.ResponseBody(). Errors from the group are returned unchanged: an
// *upstream.Error (job.Status 502, or 504 after a timeout), or ctx.Err()
// when ctx was cancelled between attempts (job.Status 499, nginx's
// client-closed code). job.Result is filled in both
// cases. Call from a worker goroutine (it blocks on the network); safe for
// concurrent use with distinct Jobs.
func Do(ctx context.Context, s *Settings, job *Job) error {
	if s.group == nil {
		job.Status = fasthttp.StatusBadGateway
		return ErrNoGroup
	}
	req, resp := job.Request(), job.Response()
	s.BuildRequest(req, job)
	resp.Header.SetNoDefaultContentType(true)
	// Do returns after the response head; the body is ours to buffer or
	// relay (below).
	resp.StreamBody = true
	err := s.group.Do(ctx, req, resp, s.nu, job.HashKey, job.ClientIP, &job.Result)
	if err != nil {
		var ue *upstream.Error
		switch {
		case errors.As(err, &ue):
			job.Status = ue.Status
		case ctx.Err() != nil:
			// The client went away: nginx logs 499 and sends nothing.
			job.Status = 499
		default:
			job.Status = fasthttp.StatusBadGateway
		}
		return err
	}
	s.ComposeResponse(resp, &job.Head)
	job.Status = job.Head.Status
	if !s.Buffered(job.Head.AccelBuffering) {
		job.Streaming = true
		return nil
	}
	if err := job.readBody(&s.buffering); err != nil {
		_ = resp.CloseBodyStream()
		job.Status = fasthttp.StatusBadGateway
		job.Result.Status = fasthttp.StatusBadGateway
		if n := len(job.Result.Attempts); n > 0 {
			job.Result.Attempts[n-1].Status = fasthttp.StatusBadGateway
		}
		return &upstream.Error{Status: fasthttp.StatusBadGateway, Err: err}
	}
	return nil
}

// Buffered reports whether a response with this X-Accel-Buffering value
// (nil when absent) is buffered: proxy_buffering, turned off by the app's
// "no" unless proxy_ignore_headers lists X-Accel-Buffering. The app's
// "yes" does not turn buffering on under proxy_buffering off: nginx 1.22
// keeps streaming then (checked by TestStreamingDifferential).
func (s *Settings) Buffered(accel []byte) bool {
	if s.buffering.Off {
		return false
	}
	return s.buffering.IgnoreAccel || !eqFold(accel, []byte("no"))
}

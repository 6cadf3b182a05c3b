package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"edgeproxy/upstream"
)

// LocationKind is how the location holding proxy_pass was defined. The
// zero value is Prefix.
type LocationKind uint8

const (
	// Prefix is `location /p/` or `location = /p` (and ^~): the matched
	// name is the prefix replaced by the pass URI.
	Prefix LocationKind = iota
	// Regex is `location ~ re` / `~* re` (clcf->regex).
	Regex
	// Named is `location @name` (clcf->named).
	Named
	// NoName is proxy_pass inside `if` or `limit_except` (clcf->noname).
	NoName
)

// SetHeader is one proxy_set_header directive as configured; its value is
// evaluated per request by the caller and handed to Do in Job.SetValues.
type SetHeader struct {
	// Name is the header name exactly as written in the config; it goes
	// upstream with this spelling.
	Name string
	// Empty is true when the configured value is the empty string: nginx
	// then never sends the header (and still suppresses the client's header
	// of that name). A non-empty template that evaluates to "" per request
	// also suppresses the line (ngx_http_proxy_create_request skips
	// val_len == 0).
	Empty bool
}

// Timeouts are proxy_connect_timeout, proxy_send_timeout,
// proxy_read_timeout and proxy_buffer_size. Zero values mean nginx's
// defaults (60s, 60s, 60s, one page).
type Timeouts struct {
	Connect, Send, Read time.Duration
	// BufferSize is proxy_buffer_size: the whole upstream response header
	// must fit, else 502 "upstream sent too big header".
	BufferSize int
}

// Config is the per-location proxy configuration from which NewSettings
// compiles Settings. Every zero value is nginx's default: proxy_http_version
// 1.0, request headers and body passed, proxy_redirect default,
// proxy_intercept_errors off.
type Config struct {
	Pass Pass
	// Group receives the requests: the `upstream {}` block named by
	// Pass.Upstream() or ImplicitGroup(Pass, ...). It may be nil for
	// callers that only compose (AppendUpstreamURI, BuildRequest,
	// ComposeResponse); Do requires it.
	Group *upstream.Group
	// NextUpstream is proxy_next_upstream*; nil means nginx's default
	// "error timeout".
	NextUpstream *upstream.NextUpstream

	// Location is the location name ("/api/", "/api" for `= /api`).
	Location     string
	LocationKind LocationKind

	// HTTP11 is `proxy_http_version 1.1`.
	HTTP11 bool
	// SetHeaders are the proxy_set_header directives in config order.
	SetHeaders []SetHeader
	// HideHeaders / PassHeaders are proxy_hide_header / proxy_pass_header
	// names (case-insensitive).
	HideHeaders, PassHeaders []string
	// NoPassRequestHeaders is `proxy_pass_request_headers off`.
	NoPassRequestHeaders bool
	// NoPassRequestBody is `proxy_pass_request_body off`.
	NoPassRequestBody bool
	// Redirect is the proxy_redirect configuration (zero: default).
	Redirect Redirects
	// InterceptErrors is `proxy_intercept_errors on`; the pipeline applies
	// it (it owns error_page): see Settings.Intercepts.
	InterceptErrors bool
	// Timeouts are only used by ImplicitGroup: upstream.Group binds its
	// timeouts per group (GroupSpec), not per location as nginx does.
	Timeouts
	// Buffering is proxy_buffering, proxy_buffers, proxy_temp_path,
	// proxy_max_temp_file_size and proxy_ignore_headers X-Accel-Buffering.
	Buffering Buffering
}

// Buffering says how Do reads the upstream response body. The zero value
// is nginx's default: buffered, DefaultBufferMem in memory, then a
// temporary file in os.TempDir() of up to DefaultMaxTempFile bytes, and
// X-Accel-Buffering from the app honoured.
type Buffering struct {
	// Off is `proxy_buffering off`: Do returns after the response head and
	// the body is relayed as it arrives (Job.Streaming).
	Off bool
	// IgnoreAccel is `proxy_ignore_headers X-Accel-Buffering`.
	IgnoreAccel bool
	// Mem is how much of a body is kept in memory before spilling to the
	// temporary file; 0 means DefaultBufferMem.
	Mem int
	// TempPath is proxy_temp_path's directory; "" means os.TempDir().
	TempPath string
	// MaxTempFile is proxy_max_temp_file_size; 0 means DefaultMaxTempFile.
	// NoTempFile is `proxy_max_temp_file_size 0`: what does not fit in
	// memory is relayed at the client's pace, holding the app's
	// connection (nginx's behaviour too).
	MaxTempFile int64
	NoTempFile  bool
}

// DefaultBufferMem is the memory kept per buffered response before
// spilling: nginx's 8 proxy_buffers of one page would spill every response
// over 32 KiB, since edgeproxy reads the whole body before sending it
// (nginx sends while it reads), so the floor is higher. A larger
// proxy_buffers total wins.
const DefaultBufferMem = 1 << 20

// DefaultMaxTempFile is nginx's proxy_max_temp_file_size default, 1024m.
const DefaultMaxTempFile = 1 << 30

// hdrSource tells where the value of an upstream request header comes from.
type hdrSource uint8

const (
	srcUser          hdrSource = iota // Job.SetValues[index]
	srcProxyHost                      // $proxy_host
	srcClose                          // "close"
	srcContentLength                  // $proxy_internal_body_length
	srcNone                           // empty: never sent (TE, Keep-Alive, ...)
)

type hdrEntry struct {
	name  string
	nameB []byte
	src   hdrSource
	index int // into Job.SetValues for srcUser
}

type redirectRule struct {
	pattern, replacement string
}

// Settings is the compiled proxy configuration of one location, built by
// NewSettings once per configuration. The zero value is not usable.
// Settings is immutable and safe for concurrent use by any goroutine.
type Settings struct {
	pass      Pass
	group     *upstream.Group
	nu        *upstream.NextUpstream
	location  string // "" for regex/named/noname locations (plcf->location.len = 0)
	proxyHost string
	proxyPort string
	protocol  string
	// headers is ngx_http_proxy_init_headers' merged list: proxy_set_header
	// entries, then nginx's defaults (ngx_http_proxy_headers) not
	// overridden.
	headers []hdrEntry
	// skip holds the lower-cased names of headers, so that the client's
	// headers of those names are not passed (the headers hash).
	skip            []string
	skipB           [][]byte
	proxyHostB      []byte
	passReqHeaders  bool
	passReqBody     bool
	hide            [][]byte // lower-cased, defaults - pass + hide
	passServer      bool
	passDate        bool
	redirects       []redirectRule
	interceptErrors bool
	buffering       Buffering
}

// ngx_http_proxy_hide_headers.
var defaultHide = []string{"date", "server", "x-pad", "x-accel-expires", "x-accel-redirect",
	"x-accel-limit-rate", "x-accel-buffering", "x-accel-charset"}

// NewSettings compiles c as ngx_http_proxy_pass and
// ngx_http_proxy_merge_loc_conf do. It refuses a pass with a URI part in a
// regex or named location, inside `if` or `limit_except`, with nginx's
// message.
func NewSettings(c Config) (*Settings, error) {
	if c.Pass.URL == "" {
		return nil, errors.New(`"proxy_pass" is not set`)
	}
	s := &Settings{
		pass:            c.Pass,
		group:           c.Group,
		nu:              c.NextUpstream,
		location:        c.Location,
		proxyHost:       c.Pass.proxyHost(),
		proxyPort:       c.Pass.proxyPort(),
		protocol:        "HTTP/1.0",
		passReqHeaders:  !c.NoPassRequestHeaders,
		passReqBody:     !c.NoPassRequestBody,
		interceptErrors: c.InterceptErrors,
		buffering:       c.Buffering,
	}
	if s.buffering.Mem < DefaultBufferMem {
		s.buffering.Mem = DefaultBufferMem
	}
	if s.buffering.MaxTempFile <= 0 {
		s.buffering.MaxTempFile = DefaultMaxTempFile
	}
	if s.buffering.NoTempFile {
		s.buffering.MaxTempFile = 0
	}
	if c.HTTP11 {
		s.protocol = "HTTP/1.1"
	}
	if c.LocationKind != Prefix {
		// ngx_http_proxy_pass: clcf->named || clcf->regex || clcf->noname.
		if c.Pass.HasURI() {
			return nil, errors.New(`"proxy_pass" cannot have URI part in location given by regular expression, ` +
				`or inside named location, or inside "if" statement, or inside "limit_except" block`)
		}
		s.location = ""
	}
	// ngx_http_proxy_init_headers: user headers first, then the defaults
	// whose names the user did not set.
	for i, h := range c.SetHeaders {
		if h.Name == "" {
			return nil, errors.New(`empty header name in "proxy_set_header"`)
		}
		s.skip = append(s.skip, strings.ToLower(h.Name))
		if !h.Empty {
			s.headers = append(s.headers, hdrEntry{name: h.Name, src: srcUser, index: i})
		}
	}
	for _, d := range []hdrEntry{
		{name: "Host", src: srcProxyHost},
		{name: "Connection", src: srcClose},
		{name: "Content-Length", src: srcContentLength},
		// $proxy_internal_chunked is only set for unbuffered chunked
		// request bodies, which Do does not stream (see Job.Body).
		{name: "Transfer-Encoding", src: srcNone},
		{name: "TE", src: srcNone},
		{name: "Keep-Alive", src: srcNone},
		{name: "Expect", src: srcNone},
		{name: "Upgrade", src: srcNone},
	} {
		lc := strings.ToLower(d.name)
		if containsString(s.skip, lc) {
			continue
		}
		s.skip = append(s.skip, lc)
		if d.src != srcNone {
			s.headers = append(s.headers, d)
		}
	}
	for i := range s.headers {
		s.headers[i].nameB = []byte(s.headers[i].name)
	}
	for _, n := range s.skip {
		s.skipB = append(s.skipB, []byte(n))
	}
	s.proxyHostB = []byte(s.proxyHost)
	// ngx_http_upstream_hide_headers_hash: defaults minus proxy_pass_header,
	// plus proxy_hide_header.
	pass := lowerAll(c.PassHeaders)
	var hide []string
	for _, h := range defaultHide {
		if !containsString(pass, h) {
			hide = append(hide, h)
		}
	}
	for _, h := range lowerAll(c.HideHeaders) {
		if !containsString(hide, h) {
			hide = append(hide, h)
		}
	}
	for _, h := range hide {
		s.hide = append(s.hide, []byte(h))
	}
	s.passServer = !containsString(hide, "server")
	s.passDate = !containsString(hide, "date")
	// ngx_http_proxy_merge_loc_conf / ngx_http_proxy_redirect "default".
	if !c.Redirect.Off {
		rules := c.Redirect.Rules
		if len(rules) == 0 {
			rules = []RedirectRule{{Default: true}}
		}
		for _, r := range rules {
			if !r.Default {
				s.redirects = append(s.redirects, redirectRule{r.Pattern, r.Replacement})
				continue
			}
			if c.Pass.HasURI() {
				s.redirects = append(s.redirects, redirectRule{c.Pass.URL, s.location})
			} else {
				s.redirects = append(s.redirects, redirectRule{c.Pass.URL + "/", "/"})
			}
		}
	}
	return s, nil
}

func lowerAll(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		out = append(out, strings.ToLower(s))
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ProxyHost returns $proxy_host: "127.0.0.1:8000", "127.0.0.1" for port
// 80, the upstream name for groups, "localhost" for unix sockets.
func (s *Settings) ProxyHost() string { return s.proxyHost }

// ProxyPort returns $proxy_port: the pass's port, "80" when absent, ""
// for unix sockets.
func (s *Settings) ProxyPort() string { return s.proxyPort }

// Pass returns the parsed proxy_pass.
func (s *Settings) Pass() Pass { return s.pass }

// Group returns the upstream group given in Config.Group.
func (s *Settings) Group() *upstream.Group { return s.group }

// Intercepts reports whether the pipeline must replace an upstream
// response of this status by its error_page (ngx_http_upstream_intercept_errors:
// proxy_intercept_errors on, status >= 300 and an error_page for it, which
// hasErrorPage tells).
func (s *Settings) Intercepts(status int, hasErrorPage bool) bool {
	return s.interceptErrors && status >= 300 && hasErrorPage
}

// AppendAddXForwardedFor appends $proxy_add_x_forwarded_for: the client's
// X-Forwarded-For (several headers joined with ", " by the caller, as
// ngx_http_proxy_add_x_forwarded_for_variable does), ", ", then
// $remote_addr; only $remote_addr when xff is empty. An invalid remote
// (unix-socket client) prints "unix:" like nginx. Does not allocate.
func AppendAddXForwardedFor(dst, xff []byte, remote netip.Addr) []byte {
	if len(xff) > 0 {
		dst = append(dst, xff...)
		dst = append(dst, ", "...)
	}
	return AppendRemoteAddr(dst, remote)
}

// AppendRemoteAddr appends $remote_addr for remote.
func AppendRemoteAddr(dst []byte, remote netip.Addr) []byte {
	if !remote.IsValid() {
		return append(dst, "unix:"...)
	}
	return remote.WithZone("").AppendTo(dst)
}

// ImplicitGroup builds the group nginx creates for a proxy_pass that names
// no `upstream {}` block (ngx_http_upstream_add + ngx_http_upstream_init_round_robin
// with us->servers == NULL): one server per address the host resolves to at
// configuration time, port 80 when absent, default server parameters
// (weight 1, max_fails 1, fail_timeout 10s), no keepalive. The group is
// named after the pass's host[:port] text. Call once per configuration.
func ImplicitGroup(p Pass, t Timeouts) (*upstream.Group, error) {
	spec, err := ImplicitGroupSpec(p, t)
	if err != nil {
		return nil, err
	}
	return upstream.NewGroup(spec)
}

// ImplicitGroupSpec is the GroupSpec ImplicitGroup builds, for callers that
// adjust it (streaming) or share groups across reloads.
func ImplicitGroupSpec(p Pass, t Timeouts) (upstream.GroupSpec, error) {
	name := p.Host
	if p.Port != "" {
		name += ":" + p.Port
	}
	spec := upstream.GroupSpec{
		Name:           name,
		ConnectTimeout: t.Connect,
		SendTimeout:    t.Send,
		ReadTimeout:    t.Read,
		BufferSize:     t.BufferSize,
	}
	if p.Unix {
		spec.Name = "unix:" + p.Host
		spec.Servers = []upstream.ServerSpec{upstream.ServerDefaults("unix:" + p.Host)}
		return spec, nil
	}
	port := p.Port
	if port == "" {
		port = "80"
	}
	host := strings.TrimSuffix(strings.TrimPrefix(p.Host, "["), "]")
	if ip, err := netip.ParseAddr(host); err == nil {
		spec.Servers = []upstream.ServerSpec{upstream.ServerDefaults(net.JoinHostPort(ip.String(), port))}
		return spec, nil
	}
	// ngx_parse_url with no_resolve unset at init: every address of the
	// name becomes a server.
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return spec, fmt.Errorf(`host not found in upstream "%s"`, name)
	}
	for _, ip := range ips {
		spec.Servers = append(spec.Servers, upstream.ServerDefaults(net.JoinHostPort(ip.String(), port)))
	}
	return spec, nil
}

// HTTP11 reports `proxy_http_version 1.1`.
func (s *Settings) HTTP11() bool { return s.protocol == "HTTP/1.1" }

package snapshot

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"edgeproxy/cachestore"
	"edgeproxy/config"
	"edgeproxy/proxy"
	"edgeproxy/upstream"
)

// ProxyConf holds the inheritable proxy_* settings of a level, before
// they are compiled into proxy.Settings for a location with proxy_pass.
type ProxyConf struct {
	SetNames    []string
	SetValues   []Template
	HTTP11      bool
	Hide, Pass  []string
	Redirects   [][]string
	Intercept   bool
	Timeouts    proxy.Timeouts
	Next        *upstream.NextUpstream
	NoReqHdrs   bool
	NoReqBody   bool
	NoBuffering bool // proxy_buffering off: relay the body as it arrives
	NoReqBuffer bool // proxy_request_buffering off: stream the body to the app
	BufferMem   int  // proxy_buffers number*size
	TempPath    string
	MaxTempFile int64 // proxy_max_temp_file_size; -1 = unset
}

// Proxy is the compiled proxy_pass of a location.
type Proxy struct {
	Settings  *proxy.Settings
	SetValues []Template // proxy_set_header values, evaluated per request in order
	HashKey   *Template  // the upstream's `hash KEY`, if any
}

// upstreamBlock is a compiled `upstream {}` block; groups are built per
// distinct proxy timeouts, since nginx binds timeouts per location and
// upstream.Group holds them per group.
type upstreamBlock struct {
	spec    upstream.GroupSpec
	hashKey *Template
	groups  map[groupKey]*upstream.Group
	d       *config.Directive
}

func (c *compiler) upstreams(ds []*config.Directive) error {
	c.ups = map[string]*upstreamBlock{}
	for _, d := range ds {
		if d.Name != "upstream" {
			continue
		}
		name := d.Args[0]
		if _, dup := c.ups[name]; dup {
			return errAt(d, "duplicate upstream %q", name)
		}
		ub := &upstreamBlock{spec: upstream.GroupSpec{Name: name}, groups: map[groupKey]*upstream.Group{}, d: d}
		for _, u := range d.Block {
			if err := c.upstreamDirective(u, ub); err != nil {
				return err
			}
		}
		if len(ub.spec.Servers) == 0 {
			return errAt(d, "no servers are inside upstream")
		}
		c.ups[name] = ub
	}
	return nil
}

func (c *compiler) upstreamDirective(d *config.Directive, ub *upstreamBlock) error {
	s := &ub.spec
	switch d.Name {
	case "server":
		sv := upstream.ServerSpec{Addr: d.Args[0], Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}
		for _, a := range d.Args[1:] {
			var err error
			switch {
			case strings.HasPrefix(a, "weight="):
				sv.Weight, err = strconv.Atoi(a[7:])
				if err == nil && sv.Weight <= 0 {
					err = fmt.Errorf("bad")
				}
			case strings.HasPrefix(a, "max_fails="):
				sv.MaxFails, err = strconv.Atoi(a[10:])
			case strings.HasPrefix(a, "fail_timeout="):
				sv.FailTimeout, err = config.ParseSeconds(a[13:])
			case strings.HasPrefix(a, "max_conns="):
				sv.MaxConns, err = strconv.Atoi(a[10:])
			case a == "backup":
				sv.Backup = true
			case a == "down":
				sv.Down = true
			default:
				return errAt(d, "invalid parameter %q", a)
			}
			if err != nil {
				return errAt(d, "invalid parameter %q", a)
			}
		}
		if strings.HasPrefix(sv.Addr, "unix:") {
			// as written
		} else if !strings.Contains(strings.TrimPrefix(sv.Addr, "["), ":") || strings.HasSuffix(sv.Addr, "]") {
			sv.Addr += ":80"
		}
		s.Servers = append(s.Servers, sv)
	case "least_conn":
		s.Balance = upstream.LeastConn
	case "ip_hash":
		s.Balance = upstream.IPHash
	case "hash":
		s.Balance = upstream.Hash
		t, err := c.tmpl(d, d.Args[0])
		if err != nil {
			return err
		}
		ub.hashKey = &t
		if len(d.Args) == 2 {
			if d.Args[1] != "consistent" {
				return errAt(d, "invalid parameter %q", d.Args[1])
			}
			s.HashConsistent = true
		}
	case "random":
		s.Balance = upstream.Random
		if len(d.Args) > 0 {
			if d.Args[0] != "two" || len(d.Args) == 2 && d.Args[1] != "least_conn" {
				return errAt(d, "invalid parameter %q", strings.Join(d.Args, " "))
			}
			s.Balance = upstream.RandomTwo
		}
	case "keepalive":
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n <= 0 {
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
		s.Keepalive = n
	case "keepalive_timeout":
		t, err := dur(d, d.Args[0])
		if err != nil {
			return err
		}
		s.KeepaliveTimeout = t
	case "keepalive_requests":
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n <= 0 {
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
		s.KeepaliveRequests = n
	case "zone":
		c.note(d, `"zone" in upstream is accepted: upstream state is shared by all event loops anyway`)
	case "health_check":
		// edgeproxy's active health checks (beyond nginx OSS): a server
		// failing `fails` probes in a row is taken out until `passes`
		// succeed, so a dead app is out before a client hits it.
		hs := &upstream.HealthSpec{Interval: 5 * time.Second, Rise: 2, Fall: 3, URI: "/"}
		for _, a := range d.Args {
			k, v, _ := strings.Cut(a, "=")
			var err error
			switch k {
			case "interval":
				hs.Interval, err = config.ParseTime(v)
			case "timeout":
				hs.Timeout, err = config.ParseTime(v)
			case "uri":
				hs.URI = v
			case "host":
				hs.Host = v
			case "match", "status":
				hs.ExpectStatus = v
			case "fails":
				hs.Fall, err = strconv.Atoi(v)
			case "passes":
				hs.Rise, err = strconv.Atoi(v)
			default:
				return errAt(d, "invalid parameter %q", a)
			}
			if err != nil {
				return errAt(d, "invalid parameter %q", a)
			}
		}
		s.HealthCheck = hs
	default:
		return errAt(d, "%q directive is not supported by edgeproxy", d.Name)
	}
	return nil
}

// proxyDirective applies one proxy_* directive to the level's ProxyConf.
// firsts tracks the array directives a level replaces when it sets any.
func (c *compiler) proxyDirective(d *config.Directive, loc *Location, firsts map[string]bool) error {
	p := &loc.ProxyConf
	first := !firsts[d.Name]
	firsts[d.Name] = true
	var err error
	switch d.Name {
	case "proxy_pass":
		loc.proxyPass = d
	case "proxy_set_header":
		if first {
			p.SetNames, p.SetValues = nil, nil
		}
		t, e := c.tmpl(d, d.Args[1])
		if e != nil {
			return e
		}
		p.SetNames = append(p.SetNames, d.Args[0])
		p.SetValues = append(p.SetValues, t)
	case "proxy_http_version":
		switch d.Args[0] {
		case "1.0":
			p.HTTP11 = false
		case "1.1":
			p.HTTP11 = true
		default:
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
	case "proxy_hide_header":
		if first {
			p.Hide = nil
		}
		p.Hide = append(p.Hide, d.Args[0])
	case "proxy_pass_header":
		if first {
			p.Pass = nil
		}
		p.Pass = append(p.Pass, d.Args[0])
	case "proxy_redirect":
		if first {
			p.Redirects = nil
		}
		p.Redirects = append(p.Redirects, d.Args)
		var r proxy.Redirects
		for _, a := range p.Redirects {
			if e := r.ParseRedirect(a); e != nil {
				return errAt(d, "%s", e.Error())
			}
		}
	case "proxy_intercept_errors":
		p.Intercept = d.Args[0] == "on"
	case "proxy_connect_timeout":
		p.Timeouts.Connect, err = dur(d, d.Args[0])
	case "proxy_send_timeout":
		p.Timeouts.Send, err = dur(d, d.Args[0])
	case "proxy_read_timeout":
		p.Timeouts.Read, err = dur(d, d.Args[0])
	case "proxy_buffer_size":
		var n int64
		n, err = size(d, d.Args[0])
		p.Timeouts.BufferSize = int(n)
	case "proxy_buffers":
		// ngx_conf_set_bufs_slot: "8 4k".
		var num int
		num, err = strconv.Atoi(d.Args[0])
		if err != nil || num <= 0 {
			return errAt(d, "invalid value \"%s\"", d.Args[0])
		}
		var n int64
		if n, err = size(d, d.Args[1]); err == nil {
			if n <= 0 {
				return errAt(d, "invalid value \"%s\"", d.Args[1])
			}
			p.BufferMem = num * int(n)
		}
	case "proxy_buffering":
		p.NoBuffering = d.Args[0] == "off"
	case "proxy_request_buffering":
		p.NoReqBuffer = d.Args[0] == "off"
	case "proxy_max_temp_file_size":
		p.MaxTempFile, err = size(d, d.Args[0])
	case "proxy_temp_file_write_size", "proxy_busy_buffers_size":
		// Sizes of nginx's write and busy-buffer chunks: edgeproxy writes
		// the temporary file as the app's bytes arrive and sends with
		// sendfile, so they change nothing; the value is still checked.
		_, err = size(d, d.Args[0])
	case "proxy_temp_path":
		p.TempPath = c.path(d.Args[0])
	case "proxy_pass_request_headers":
		p.NoReqHdrs = d.Args[0] == "off"
	case "proxy_pass_request_body":
		p.NoReqBody = d.Args[0] == "off"
	case "proxy_next_upstream":
		nu := upstream.NextUpstream{}
		if p.Next != nil {
			nu.Tries, nu.TimeLimit = p.Next.Tries, p.Next.TimeLimit
		}
		for _, a := range d.Args {
			switch a {
			case "error":
				nu.Error = true
			case "timeout":
				nu.Timeout = true
			case "invalid_header":
				nu.InvalidHeader = true
			case "http_500":
				nu.HTTP500 = true
			case "http_502":
				nu.HTTP502 = true
			case "http_503":
				nu.HTTP503 = true
			case "http_504":
				nu.HTTP504 = true
			case "http_403":
				nu.HTTP403 = true
			case "http_404":
				nu.HTTP404 = true
			case "http_429":
				nu.HTTP429 = true
			case "non_idempotent":
				nu.NonIdempotent = true
			case "off":
				nu.Off = true
			default:
				return errAt(d, "invalid value %q", a)
			}
		}
		p.Next = &nu
	case "proxy_next_upstream_tries", "proxy_next_upstream_timeout":
		nu := upstream.DefaultNextUpstream
		if p.Next != nil {
			nu = *p.Next
		}
		if d.Name == "proxy_next_upstream_tries" {
			nu.Tries, err = nonneg(d, d.Args[0])
		} else {
			nu.TimeLimit, err = dur(d, d.Args[0])
		}
		p.Next = &nu
	default:
		return errAt(d, "%q directive is not supported by edgeproxy", d.Name)
	}
	return err
}

// bindProxy compiles a location's proxy_pass once its settings are final.
func (c *compiler) bindProxy(loc *Location) error {
	d := loc.proxyPass
	if d == nil {
		return nil
	}
	pass, err := proxy.ParsePass(d.Args[0])
	if err != nil {
		return errAt(d, "%s", err.Error())
	}
	p := &loc.ProxyConf
	kind := proxy.Prefix
	switch loc.Modifier {
	case "~", "~*":
		kind = proxy.Regex
	case "@":
		kind = proxy.Named
	}
	var redirects proxy.Redirects
	for _, a := range p.Redirects {
		if err := redirects.ParseRedirect(a); err != nil {
			return errAt(d, "%s", err.Error())
		}
	}
	cfg := proxy.Config{
		Pass: pass, NextUpstream: p.Next, Location: loc.Pattern, LocationKind: kind,
		HTTP11: p.HTTP11, HideHeaders: p.Hide, PassHeaders: p.Pass,
		NoPassRequestHeaders: p.NoReqHdrs, NoPassRequestBody: p.NoReqBody,
		Redirect: redirects, InterceptErrors: p.Intercept, Timeouts: p.Timeouts,
		Buffering: proxy.Buffering{
			Off: p.NoBuffering, IgnoreAccel: loc.Cache.Ignore&cachestore.IgnoreXAccelBuffering != 0,
			Mem: p.BufferMem, TempPath: p.TempPath,
			MaxTempFile: p.MaxTempFile, NoTempFile: p.MaxTempFile == 0,
		},
	}
	for i, n := range p.SetNames {
		cfg.SetHeaders = append(cfg.SetHeaders, proxy.SetHeader{Name: n, Empty: p.SetValues[i].Raw == ""})
	}
	out := &Proxy{SetValues: p.SetValues}
	if name := pass.Upstream(); name != "" {
		if ub, ok := c.ups[name]; ok {
			if err := pass.UpstreamPortError(); err != nil {
				return errAt(d, "%s", err.Error())
			}
			key := groupKey{p.Timeouts}
			g, ok := ub.groups[key]
			if !ok {
				spec := ub.spec
				spec.ConnectTimeout, spec.SendTimeout, spec.ReadTimeout = p.Timeouts.Connect, p.Timeouts.Send, p.Timeouts.Read
				spec.BufferSize = p.Timeouts.BufferSize
				g, err = shared.group(spec)
				if err != nil {
					return errAt(ub.d, "%s", err.Error())
				}
				ub.groups[key] = g
			}
			cfg.Group = g
			out.HashKey = ub.hashKey
		}
	}
	if cfg.Group == nil {
		spec, err := proxy.ImplicitGroupSpec(pass, p.Timeouts)
		if err != nil {
			return errAt(d, "%s", err.Error())
		}
		g, err := shared.group(spec)
		if err != nil {
			return errAt(d, "%s", err.Error())
		}
		cfg.Group = g
	}
	s, err := proxy.NewSettings(cfg)
	if err != nil {
		return errAt(d, "%s", err.Error())
	}
	out.Settings = s
	loc.Proxy = out
	return nil
}

// groupKey tells apart the groups built from one upstream block: nginx
// binds timeouts and buffering per location, upstream.Group per group.
type groupKey struct {
	t proxy.Timeouts
}

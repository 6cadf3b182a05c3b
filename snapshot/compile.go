package snapshot

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"edgeproxy/cachestore"
	"edgeproxy/config"
	"edgeproxy/fleet"
	"edgeproxy/route"
	"edgeproxy/static"
)

// Notice is a non-fatal remark for `edgeproxy -t`, such as a directive that
// only tunes nginx internals.
type Notice struct {
	File string
	Line int
	Msg  string
}

func (n Notice) String() string { return fmt.Sprintf("%s in %s:%d", n.Msg, n.File, n.Line) }

// compileError is worded like nginx's emerg messages: "MSG in FILE:LINE".
func errAt(d *config.Directive, format string, a ...any) error {
	return &config.Error{File: d.File, Line: d.Line, Msg: fmt.Sprintf(format, a...)}
}

type compiler struct {
	snap         *Snapshot
	notices      []Notice
	listeners    map[string]*Listener
	reqZones     map[string]*ReqZone
	connZones    map[string]*ConnZone
	ups          map[string]*upstreamBlock
	formats      map[string]*LogFormat
	mainErrorLog *ErrorLog
	zones        map[string]*cachestore.Zone
	purgers      map[string]*fleet.Purger // zones with redis= (fleet-wide purge)
	maps         map[string]int
	prefix       string
	confDir      string
}

// Compile turns a validated config into an immutable Snapshot. It is called
// from the main goroutine at start and on reload; the result is shared.
func Compile(cfg *config.Config, prefix string) (*Snapshot, []Notice, error) {
	c := &compiler{
		snap:      &Snapshot{Loops: 1, WorkerConnections: 512, Prefix: prefix, Daemon: true, TCPNoDelay: true},
		listeners: map[string]*Listener{},
		prefix:    prefix,
	}
	c.snap.Files = shared.files()
	c.snap.Logs = shared.logs()
	if len(cfg.Files) > 0 {
		c.confDir = filepath.Dir(cfg.Files[0])
	}
	var httpBlock *config.Directive
	for _, d := range cfg.Main {
		var err error
		switch d.Name {
		case "worker_processes":
			if d.Args[0] == "auto" {
				c.snap.Loops = runtime.NumCPU()
			} else {
				c.snap.Loops, err = positive(d, d.Args[0])
			}
		case "pid":
			c.snap.PidFile = c.path(d.Args[0])
		case "error_log":
			c.snap.ErrorLog = d.Args[0]
			if d.Args[0] != "stderr" {
				c.snap.ErrorLog = c.path(d.Args[0])
			}
			if len(d.Args) > 1 {
				c.snap.ErrorLogLevel = d.Args[1]
			}
			c.mainErrorLog, err = c.errorLog(d)
		case "worker_rlimit_nofile":
			c.snap.RlimitNofile, err = positive(d, d.Args[0])
		case "worker_cpu_affinity":
			c.snap.CPUAffinity, err = cpuAffinity(d)
		case "daemon":
			c.snap.Daemon = d.Args[0] == "on"
			if c.snap.Daemon {
				c.note(d, `"daemon on" is served in the foreground: edgeproxy never forks (run it under systemd)`)
			}
		case "events":
			for _, e := range d.Block {
				switch e.Name {
				case "worker_connections":
					c.snap.WorkerConnections, err = positive(e, e.Args[0])
				default:
					err = c.other(e)
				}
				if err != nil {
					return nil, nil, err
				}
			}
		case "http":
			httpBlock = d
		case "worker_shutdown_timeout":
			c.snap.ShutdownTimeout, err = dur(d, d.Args[0])
		default:
			err = c.other(d)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if httpBlock != nil {
		if err := c.compileHTTP(httpBlock); err != nil {
			return nil, nil, err
		}
	}
	return c.snap, c.notices, nil
}

func (c *compiler) note(d *config.Directive, msg string) {
	c.notices = append(c.notices, Notice{File: d.File, Line: d.Line, Msg: msg})
}

// other handles directives the config table accepts but that have no runtime
// effect here (Accepted), and refuses anything the compiler does not know:
// an implemented-but-uncompiled directive must never be silently ignored.
func (c *compiler) other(d *config.Directive) error {
	if spec, ok := config.Lookup(d.Name); ok && spec.Support == config.Accepted {
		c.note(d, fmt.Sprintf("%q directive is accepted and has no effect in edgeproxy", d.Name))
		return nil
	}
	switch d.Name {
	case "user", "include":
		return nil
	}
	return errAt(d, "%q directive is not supported by edgeproxy", d.Name)
}

func (c *compiler) path(p string) string {
	if filepath.IsAbs(p) || c.prefix == "" {
		return p
	}
	return filepath.Join(c.prefix, p)
}

func positive(d *config.Directive, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, errAt(d, "invalid value %q in %q directive", s, d.Name)
	}
	return n, nil
}

// defaults returns the http-level settings nginx starts from
// (ngx_http_core_create_loc_conf + merge defaults).
func defaults() *Location {
	return &Location{
		Root:              Template{Raw: "html", Segs: []Seg{{Lit: "html"}}},
		Index:             []Template{{Raw: "index.html", Segs: []Seg{{Lit: "index.html"}}}},
		DefaultType:       "text/plain",
		Etag:              true,
		IMS:               static.IMSExact,
		ServerTokens:      true,
		LogNotFound:       true,
		AbsoluteRedirect:  true,
		PortInRedirect:    true,
		KeepaliveTimeout:  75 * time.Second,
		KeepaliveRequests: 1000,
		ClientBodyTimeout: 60 * time.Second,
		SendTimeout:       60 * time.Second,
		ClientMaxBodySize: 1 << 20,
		ClientBodyBuffer:  16 << 10, // nginx: two pages
		ProxyConf:         ProxyConf{MaxTempFile: -1},
		Limits:            Limits{ReqStatus: 503, ConnStatus: 503, ReqLogLevel: LevelError},
		Gzip:              defaultGzip(),
		Brotli:            defaultBrotli(),
		Zstd:              defaultZstd(),
		TLS:               defaultTLS(),
		Cache:             defaultCache(),
		TCPNoDelay:        true,
	}
}

func defaultHeaderLimits() HeaderLimits {
	return HeaderLimits{
		ClientHeaderTimeout:    60 * time.Second,
		ClientHeaderBufferSize: 1024,
		LargeBuffers:           4,
		LargeBufferSize:        8192,
		IgnoreInvalidHeaders:   true,
		MergeSlashes:           true,
	}
}

// block describes what level a set of directives belongs to.
type level int

const (
	lvHTTP level = iota
	lvServer
	lvLocation
)

func (c *compiler) compileHTTP(h *config.Directive) error {
	base := defaults()
	base.ErrorLog = c.mainErrorLog
	if base.ErrorLog == nil {
		base.ErrorLog = c.defaultErrorLog()
	}
	hl := defaultHeaderLimits()
	typesSet := false
	if err := c.mapBlocks(h.Block); err != nil {
		return err
	}
	if err := c.limitZones(h.Block); err != nil {
		return err
	}
	if err := c.upstreams(h.Block); err != nil {
		return err
	}
	if err := c.logFormats(h.Block); err != nil {
		return err
	}
	if err := c.cachePaths(h.Block); err != nil {
		return err
	}
	if err := c.applyCommon(h.Block, base, &hl, lvHTTP, &typesSet); err != nil {
		return err
	}
	if !typesSet {
		base.Types = static.BuiltinTypes()
	}
	c.defaultAccessLog(base)
	for _, d := range h.Block {
		if d.Name == "server" {
			if err := c.compileServer(d, base, hl); err != nil {
				return err
			}
		}
	}
	// Resolve listeners into a stable order and build server-name tables.
	for _, l := range c.listeners {
		if err := l.Names.Build(); err != nil {
			return &config.Error{File: l.File, Line: l.Line, Msg: err.Error()}
		}
		c.snap.Listeners = append(c.snap.Listeners, l)
	}
	sortListeners(c.snap.Listeners)
	return nil
}

func sortListeners(ls []*Listener) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Addr < ls[j-1].Addr; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// copyLoc clones inherited settings for a child block. Slices and maps are
// shared until the child sets its own (copy-on-set), which is exactly nginx's
// rule for add_header, error_page and index: a level that sets any of them
// replaces all inherited ones.
func copyLoc(p *Location) *Location {
	n := *p
	n.Return = nil
	n.Try = nil
	n.Internal = false
	n.HasAlias = false
	n.Alias = Template{}
	n.AliasRegex = false
	n.Proxy = nil
	n.proxyPass = nil
	n.accessSet = false
	n.StatusPage = NoStatusPage
	return &n
}

// applyCommon applies the non-block directives of one level to loc. Blocks
// (server, location) are compiled after, so order inside a block does not
// matter, as in nginx.
func (c *compiler) applyCommon(ds []*config.Directive, loc *Location, hl *HeaderLimits, lv level, typesSet *bool) error {
	var addHeaders, errorPages, index bool
	firstReq, firstConn := true, true
	firsts := map[string]bool{}
	for _, d := range ds {
		var err error
		if strings.HasPrefix(d.Name, "gzip") && d.Name != "gzip_buffers" && d.Name != "gzip_hash" && d.Name != "gzip_window" && d.Name != "gzip_no_buffer" {
			if err := c.gzipDirective(d, &loc.Gzip, firsts); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(d.Name, "brotli") || strings.HasPrefix(d.Name, "zstd") {
			if err := c.encodingDirective(d, loc, firsts); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(d.Name, "ssl") && d.Name != "ssl_prefer_server_ciphers" {
			if err := c.tlsDirective(d, &loc.TLS, firsts); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(d.Name, "proxy_cache") || d.Name == "proxy_no_cache" || d.Name == "proxy_ignore_headers" {
			if err := c.cacheDirective(d, &loc.Cache, firsts); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(d.Name, "proxy_") {
			if lv != lvLocation && d.Name == "proxy_pass" {
				return errAt(d, "%q directive is not allowed here", d.Name)
			}
			if err := c.proxyDirective(d, loc, firsts); err != nil {
				return err
			}
			continue
		}
		switch d.Name {
		case "upstream", "map":
			continue // compiled by upstreams / mapBlocks
		case "limit_req_zone", "limit_conn_zone", "limit_req", "limit_conn", "limit_req_status", "limit_conn_status",
			"limit_req_dry_run", "limit_conn_dry_run", "limit_req_log_level", "limit_conn_log_level":
			err = c.limitDirective(d, loc, &firstReq, &firstConn)
		case "server", "location", "listen", "server_name":
			continue // handled by the caller
		case "types":
			if !*typesSet {
				loc.Types = static.NewTypes()
				*typesSet = true
			}
			for _, t := range d.Block {
				loc.Types.Add(t.Name, t.Args...)
			}
		case "default_type":
			loc.DefaultType = d.Args[0]
		case "charset":
			if d.Args[0] == "off" {
				loc.Charset = ""
			} else {
				loc.Charset = d.Args[0]
			}
		case "root":
			loc.Root, err = c.tmpl(d, d.Args[0])
		case "alias":
			loc.Alias, err = c.tmpl(d, d.Args[0])
			loc.HasAlias = true
		case "index":
			if !index {
				loc.Index = nil
				index = true
			}
			for _, a := range d.Args {
				t, e := c.tmpl(d, a)
				if e != nil {
					return e
				}
				loc.Index = append(loc.Index, t)
			}
		case "add_header":
			if !addHeaders {
				loc.AddHeaders = nil
				addHeaders = true
			}
			ah := AddHeader{Name: d.Args[0]}
			ah.Value, err = c.tmpl(d, d.Args[1])
			if len(d.Args) == 3 {
				if d.Args[2] != "always" {
					return errAt(d, "invalid parameter %q", d.Args[2])
				}
				ah.Always = true
			}
			loc.AddHeaders = append(loc.AddHeaders, ah)
		case "expires":
			loc.Expires, err = static.ParseExpires(d.Args)
			if err != nil {
				err = errAt(d, "%s", err.Error())
			}
		case "error_page":
			if !errorPages {
				m := map[int]*ErrorPage{}
				loc.ErrorPages = m
				errorPages = true
			}
			err = c.errorPage(d, loc)
		case "etag":
			loc.Etag = d.Args[0] == "on"
		case "if_modified_since":
			switch d.Args[0] {
			case "off":
				loc.IMS = static.IMSOff
			case "exact":
				loc.IMS = static.IMSExact
			case "before":
				loc.IMS = static.IMSBefore
			default:
				err = errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
			}
		case "server_tokens":
			switch d.Args[0] {
			case "on":
				loc.ServerTokens = true
			case "off":
				loc.ServerTokens = false
			default:
				err = errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
			}
		case "log_not_found":
			loc.LogNotFound = d.Args[0] == "on"
		case "absolute_redirect":
			loc.AbsoluteRedirect = d.Args[0] == "on"
		case "port_in_redirect":
			loc.PortInRedirect = d.Args[0] == "on"
		case "server_name_in_redirect":
			loc.ServerNameInRedirect = d.Args[0] == "on"
		case "recursive_error_pages":
			loc.RecursiveErrorPages = d.Args[0] == "on"
		case "tcp_nodelay":
			loc.TCPNoDelay = d.Args[0] == "on"
			if !loc.TCPNoDelay {
				c.snap.TCPNoDelay = false
				c.note(d, `"tcp_nodelay off" applies to every connection (edgeproxy sets socket options per listener)`)
			}
		case "keepalive_timeout":
			loc.KeepaliveTimeout, err = dur(d, d.Args[0])
			loc.KeepaliveHeader = 0
			if err == nil && len(d.Args) > 1 {
				loc.KeepaliveHeader, err = dur(d, d.Args[1])
			}
		case "keepalive_requests":
			loc.KeepaliveRequests, err = nonneg(d, d.Args[0])
		case "client_body_timeout":
			loc.ClientBodyTimeout, err = dur(d, d.Args[0])
		case "send_timeout":
			loc.SendTimeout, err = dur(d, d.Args[0])
		case "client_max_body_size":
			loc.ClientMaxBodySize, err = size(d, d.Args[0])
		case "client_body_buffer_size":
			var n int64
			n, err = size(d, d.Args[0])
			loc.ClientBodyBuffer = int(n)
		case "client_body_temp_path":
			// Levels (the other arguments) only shape nginx's directory
			// tree; edgeproxy's temporary files are unlinked at creation.
			loc.ClientBodyTemp = c.path(d.Args[0])
		case "client_header_timeout":
			hl.ClientHeaderTimeout, err = dur(d, d.Args[0])
		case "client_header_buffer_size":
			var n int64
			n, err = size(d, d.Args[0])
			hl.ClientHeaderBufferSize = int(n)
		case "large_client_header_buffers":
			var n int
			n, err = positive(d, d.Args[0])
			if err == nil {
				var sz int64
				sz, err = size(d, d.Args[1])
				hl.LargeBuffers, hl.LargeBufferSize = n, int(sz)
			}
		case "merge_slashes":
			if d.Args[0] != "on" {
				err = errAt(d, `"merge_slashes off" is not supported by edgeproxy`)
			}
		case "ignore_invalid_headers":
			hl.IgnoreInvalidHeaders = d.Args[0] == "on"
		case "underscores_in_headers":
			hl.UnderscoresInHeaders = d.Args[0] == "on"
		case "internal":
			if lv != lvLocation {
				return errAt(d, "%q directive is not allowed here", d.Name)
			}
			loc.Internal = true
		case "try_files":
			err = c.tryFiles(d, loc)
		case "return":
			err = c.ret(d, loc)
		case "allow", "deny":
			err = c.accessRule(d, loc, !firsts["allow|deny"])
			firsts["allow|deny"] = true
		case "access_log":
			err = c.accessLog(d, loc, !firsts["access_log"])
			firsts["access_log"] = true
		case "log_format":
			// compiled by logFormats
		case "error_log":
			loc.ErrorLog, err = c.errorLog(d)
		case "stub_status", "metrics":
			if lv != lvLocation && !(lv == lvServer && d.Name == "stub_status") {
				return errAt(d, "%q directive is not allowed here", d.Name)
			}
			err = c.statusPage(d, loc)
		case "autoindex":
			if d.Args[0] != "off" {
				err = errAt(d, `"autoindex on" is not supported by edgeproxy`)
			}
		default:
			err = c.other(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func dur(d *config.Directive, s string) (time.Duration, error) {
	t, err := config.ParseTime(s)
	if err != nil {
		return 0, errAt(d, "%q directive invalid value", d.Name)
	}
	return t, nil
}

func size(d *config.Directive, s string) (int64, error) {
	n, err := config.ParseOffset(s)
	if err != nil {
		return 0, errAt(d, "%q directive invalid value", d.Name)
	}
	return n, nil
}

func nonneg(d *config.Directive, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errAt(d, "invalid value %q in %q directive", s, d.Name)
	}
	return n, nil
}

func (c *compiler) tmpl(d *config.Directive, s string) (Template, error) {
	t, err := CompileTemplate(s)
	if err != nil {
		return t, errAt(d, "%s", err.Error())
	}
	// Names that are no built-in variable may be `map` variables.
	for i := range t.Segs {
		sg := &t.Segs[i]
		if sg.Var == VarCapture && sg.CaptureN < 0 {
			if idx, ok := c.maps[strings.ToLower(sg.Arg)]; ok {
				sg.Var, sg.CaptureN = VarMap, idx
			}
		}
	}
	return t, nil
}

func isRedirectCode(code int) bool {
	return code == 301 || code == 302 || code == 303 || code == 307 || code == 308
}

// ret compiles `return code [text]`, `return code URL`, `return URL`
// (ngx_http_rewrite_return).
func (c *compiler) ret(d *config.Directive, loc *Location) error {
	r := &ReturnSpec{}
	code, err := strconv.Atoi(d.Args[0])
	if err != nil {
		if len(d.Args) != 1 {
			return errAt(d, "invalid return code %q", d.Args[0])
		}
		a := d.Args[0]
		if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") && !strings.HasPrefix(a, "$scheme") {
			return errAt(d, "invalid return code %q", a)
		}
		r.Code, r.IsURL, r.Has = 302, true, true
		r.Text, err = c.tmpl(d, a)
		loc.Return = r
		return err
	}
	if code < 0 || code > 999 {
		return errAt(d, "invalid return code %q", d.Args[0])
	}
	r.Code = code
	if len(d.Args) > 1 {
		r.Has = true
		r.IsURL = isRedirectCode(code)
		r.Text, err = c.tmpl(d, d.Args[1])
	}
	loc.Return = r
	return err
}

func (c *compiler) tryFiles(d *config.Directive, loc *Location) error {
	if len(d.Args) < 2 {
		return errAt(d, "invalid number of arguments in %q directive", d.Name)
	}
	tf := &TryFiles{}
	for _, a := range d.Args[:len(d.Args)-1] {
		t, err := c.tmpl(d, a)
		if err != nil {
			return err
		}
		tf.Files = append(tf.Files, t)
	}
	last := d.Args[len(d.Args)-1]
	switch {
	case strings.HasPrefix(last, "="):
		code, err := strconv.Atoi(last[1:])
		if err != nil || code < 100 || code > 999 {
			return errAt(d, "invalid code %q", last)
		}
		tf.Code = code
	case strings.HasPrefix(last, "@"):
		tf.URI = Template{Raw: last}
	default:
		t, err := c.tmpl(d, last)
		if err != nil {
			return err
		}
		tf.URI = t
	}
	loc.Try = tf
	return nil
}

// errorPage compiles `error_page code ... [=[response]] uri`
// (ngx_http_core_error_page).
func (c *compiler) errorPage(d *config.Directive, loc *Location) error {
	args := d.Args
	uri := args[len(args)-1]
	args = args[:len(args)-1]
	ep := &ErrorPage{}
	if len(args) > 0 && strings.HasPrefix(args[len(args)-1], "=") {
		o := args[len(args)-1][1:]
		args = args[:len(args)-1]
		if o == "" {
			ep.Overwrite = -1
		} else {
			n, err := strconv.Atoi(o)
			if err != nil || n < 100 || n > 999 {
				return errAt(d, "invalid value %q", "="+o)
			}
			ep.Overwrite = n
		}
	}
	if len(args) == 0 {
		return errAt(d, "invalid number of arguments in %q directive", d.Name)
	}
	if strings.HasPrefix(uri, "@") {
		ep.URI = Template{Raw: uri}
	} else {
		t, err := c.tmpl(d, uri)
		if err != nil {
			return err
		}
		ep.URI = t
		ep.Redirect = strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://") || strings.HasPrefix(uri, "$scheme")
	}
	for _, a := range args {
		code, err := strconv.Atoi(a)
		if err != nil {
			return errAt(d, "invalid value %q", a)
		}
		if code < 300 || code > 599 {
			return errAt(d, "value %q must be between 300 and 599", a)
		}
		if code == 499 {
			return errAt(d, "value %q must be between 300 and 599", a)
		}
		loc.ErrorPages[code] = ep
	}
	return nil
}

func (c *compiler) compileServer(d *config.Directive, http *Location, hl HeaderLimits) error {
	srv := &Server{}
	root := copyLoc(http)
	root.Server = srv
	typesSet := false
	if err := c.applyCommon(d.Block, root, &hl, lvServer, &typesSet); err != nil {
		return err
	}
	root.defaultTypeB = []byte(root.DefaultType)
	srv.Root = root
	srv.HeaderLims = hl
	c.snap.Servers = append(c.snap.Servers, srv)

	var listens []*config.Directive
	for _, s := range d.Block {
		switch s.Name {
		case "listen":
			listens = append(listens, s)
		case "server_name":
			srv.Names = append(srv.Names, s.Args...)
		}
	}
	if len(srv.Names) > 0 {
		srv.Name = srv.Names[0]
	}
	srv.NameCaps = map[string]int{}
	for _, n := range srv.Names {
		if strings.HasPrefix(n, "~") {
			for k, v := range captureNames(n[1:], nil) {
				srv.NameCaps[k] = v
			}
		}
	}
	for _, t := range templatesOf(root) {
		if err := checkCaptures(t, nil, srv.NameCaps); err != nil {
			return errAt(d, "%s", err.Error())
		}
		if t.Uses(VarCapture) {
			srv.NeedHostCaps = true
		}
	}
	// Locations: compile children, then build the route table.
	srv.Locations = route.NewLocations()
	named := map[string]*Location{}
	var pendingNamed []func() error
	var specs []route.Spec
	for _, s := range d.Block {
		if s.Name != "location" {
			continue
		}
		spec, err := c.compileLocation(s, root, srv, named, &pendingNamed, nil)
		if err != nil {
			return err
		}
		specs = append(specs, spec)
	}
	for _, sp := range specs {
		if err := srv.Locations.Add(sp); err != nil {
			return errAt(d, "%s", err.Error())
		}
	}
	if err := srv.Locations.Build(); err != nil {
		return errAt(d, "%s", err.Error())
	}
	for _, f := range pendingNamed {
		if err := f(); err != nil {
			return err
		}
	}
	if err := c.bindNamed(root, named, d); err != nil {
		return err
	}

	if len(listens) == 0 {
		// nginx: "listen *:80 | *:8000" — *:80 when run as root (we are
		// a drop-in for a root-started nginx master).
		port := 80
		if os.Geteuid() != 0 {
			port = 8000
		}
		listens = append(listens, &config.Directive{Name: "listen", Args: []string{strconv.Itoa(port)}, File: d.File, Line: d.Line})
	}
	bindStats(srv, listens[0].Args[0])
	ssl := false
	for _, l := range listens {
		if err := c.listen(l, srv); err != nil {
			return err
		}
		for _, a := range l.Args[1:] {
			if a == "ssl" {
				ssl = true
			}
		}
	}
	if ssl {
		if len(root.TLS.CertFiles) == 0 {
			// nginx: no "ssl_certificate" is defined for the "listen ... ssl"
			return errAt(listens[0], "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in %s:%d", d.File, d.Line)
		}
		if err := c.loadCerts(&root.TLS, listens[0]); err != nil {
			return err
		}
	}
	return nil
}

// bindNamed resolves @name references of try_files and error_page once all
// named locations of the server are known.
func (c *compiler) bindNamed(loc *Location, named map[string]*Location, d *config.Directive) error {
	if loc.Try != nil && strings.HasPrefix(loc.Try.URI.Raw, "@") && loc.Try.Named == nil {
		n, ok := named[loc.Try.URI.Raw[1:]]
		if !ok {
			return errAt(d, "could not find named location %q", loc.Try.URI.Raw)
		}
		loc.Try.Named = n
	}
	for _, ep := range loc.ErrorPages {
		if strings.HasPrefix(ep.URI.Raw, "@") && ep.Named == nil {
			n, ok := named[ep.URI.Raw[1:]]
			if !ok {
				return errAt(d, "could not find named location %q", ep.URI.Raw)
			}
			ep.Named = n
		}
	}
	return nil
}

func (c *compiler) compileLocation(d *config.Directive, parent *Location, srv *Server, named map[string]*Location, pending *[]func() error, parentCaps map[string]int) (route.Spec, error) {
	var mod, pat string
	switch len(d.Args) {
	case 1:
		pat = d.Args[0]
		if strings.HasPrefix(pat, "@") {
			mod, pat = "@", pat[1:]
		} else if strings.HasPrefix(pat, "=") && len(pat) > 1 {
			mod, pat = "=", pat[1:]
		} else if strings.HasPrefix(pat, "~*") && len(pat) > 2 {
			mod, pat = "~*", pat[2:]
		} else if strings.HasPrefix(pat, "^~") && len(pat) > 2 {
			mod, pat = "^~", pat[2:]
		} else if strings.HasPrefix(pat, "~") && len(pat) > 1 {
			mod, pat = "~", pat[1:]
		}
	case 2:
		mod, pat = d.Args[0], d.Args[1]
		switch mod {
		case "=", "~", "~*", "^~":
		default:
			return route.Spec{}, errAt(d, "invalid location modifier %q", mod)
		}
	default:
		return route.Spec{}, errAt(d, "invalid number of arguments in \"location\" directive")
	}
	loc := copyLoc(parent)
	loc.Server = srv
	loc.Modifier, loc.Pattern, loc.Named = mod, pat, mod == "@"
	caps := parentCaps
	if mod == "~" || mod == "~*" {
		caps = captureNames(pat, parentCaps)
	}
	loc.CapNames = caps
	typesSet := parent.Types != nil && false
	hl := srv.HeaderLims
	if err := c.applyCommon(d.Block, loc, &hl, lvLocation, &typesSet); err != nil {
		return route.Spec{}, err
	}
	if loc.HasAlias {
		if mod == "=" || mod == "@" {
			// nginx allows alias in "=" locations; it rejects it in named ones.
		}
		if mod == "@" {
			return route.Spec{}, errAt(d, "\"alias\" cannot be used in named location")
		}
		loc.AliasRegex = mod == "~" || mod == "~*"
	}
	loc.defaultTypeB = []byte(loc.DefaultType)
	if err := c.bindProxy(loc); err != nil {
		return route.Spec{}, err
	}
	if loc.Proxy != nil && (loc.Return != nil || loc.Try != nil) {
		// Both would answer; nginx runs return first (rewrite phase) and
		// try_files before the content handler, so proxy_pass would be
		// unreachable or partial here: keep it explicit.
		if loc.Try != nil {
			return route.Spec{}, errAt(d, `"try_files" together with "proxy_pass" is not supported by edgeproxy yet`)
		}
	}
	for _, t := range templatesOf(loc) {
		if err := checkCaptures(t, caps, srv.NameCaps); err != nil {
			return route.Spec{}, errAt(d, "%s", err.Error())
		}
		for _, sg := range t.Segs {
			if sg.Var == VarCapture {
				if sg.HostCap {
					srv.NeedHostCaps = true
				} else {
					srv.NeedCaps = true
				}
			}
		}
	}
	idx := len(srv.Locs)
	srv.Locs = append(srv.Locs, loc)
	// nginx answers "/api" with a 301 to "/api/" for a prefix location
	// "/api/" served by proxy_pass (auto_redirect).
	spec := route.Spec{Modifier: mod, Pattern: pat, Index: idx, AutoRedirect: loc.Proxy != nil}
	if mod == "@" {
		if _, dup := named[pat]; dup {
			return spec, errAt(d, "duplicate location \"@%s\"", pat)
		}
		named[pat] = loc
	}
	for _, s := range d.Block {
		if s.Name != "location" {
			continue
		}
		child, err := c.compileLocation(s, loc, srv, named, pending, caps)
		if err != nil {
			return spec, err
		}
		spec.Children = append(spec.Children, child)
	}
	dd := d
	*pending = append(*pending, func() error { return c.bindNamed(loc, named, dd) })
	return spec, nil
}

func templatesOf(l *Location) []*Template {
	ts := []*Template{&l.Root, &l.Alias}
	for i := range l.Index {
		ts = append(ts, &l.Index[i])
	}
	if l.Return != nil {
		ts = append(ts, &l.Return.Text)
	}
	if l.Try != nil {
		for i := range l.Try.Files {
			ts = append(ts, &l.Try.Files[i])
		}
		ts = append(ts, &l.Try.URI)
	}
	for i := range l.AddHeaders {
		ts = append(ts, &l.AddHeaders[i].Value)
	}
	for i := range l.ProxyConf.SetValues {
		ts = append(ts, &l.ProxyConf.SetValues[i])
	}
	for i := range l.Cache.Bypass {
		ts = append(ts, &l.Cache.Bypass[i])
	}
	for i := range l.Cache.NoCache {
		ts = append(ts, &l.Cache.NoCache[i])
	}
	return ts
}

// captureNames lists the named groups of a PCRE pattern ((?<n>...),
// (?P<n>...), (?'n'...)) with their numbers, on top of the parent's.
func captureNames(pat string, parent map[string]int) map[string]int {
	m := map[string]int{}
	for k, v := range parent {
		m[k] = v
	}
	n := 0
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case '\\':
			i++
		case '(':
			if i+1 < len(pat) && pat[i+1] == '?' {
				rest := pat[i+2:]
				var name string
				if strings.HasPrefix(rest, "P<") {
					rest = rest[2:]
				} else if strings.HasPrefix(rest, "<") && !strings.HasPrefix(rest, "<=") && !strings.HasPrefix(rest, "<!") {
					rest = rest[1:]
				} else if strings.HasPrefix(rest, "'") {
					rest = rest[1:]
				} else {
					continue
				}
				end := strings.IndexAny(rest, ">'")
				if end < 0 {
					continue
				}
				name = rest[:end]
				n++
				m[name] = n
				continue
			}
			n++
		}
	}
	return m
}

// listen compiles one `listen` directive (ngx_http_core_listen) and attaches
// srv to the listening socket.
func (c *compiler) listen(d *config.Directive, srv *Server) error {
	a := d.Args[0]
	l := &Listener{File: d.File, Line: d.Line, Backlog: 511}
	isDefault := false
	switch {
	case strings.HasPrefix(a, "unix:"):
		l.Network, l.Addr = "unix", c.path(a[5:])
	default:
		host, port := "", a
		if strings.HasPrefix(a, "[") {
			end := strings.Index(a, "]")
			if end < 0 {
				return errAt(d, "invalid host in %q of the \"listen\" directive", a)
			}
			host = a[1:end]
			port = strings.TrimPrefix(a[end+1:], ":")
			if port == "" {
				port = "80"
			}
		} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
			host, port = a[:i], a[i+1:]
		} else if _, err := strconv.Atoi(a); err != nil {
			host, port = a, "80"
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return errAt(d, "invalid port in %q of the \"listen\" directive", a)
		}
		l.Port = p
		switch host {
		case "", "*":
			host = "0.0.0.0"
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			ips, lerr := net.LookupIP(host)
			if lerr != nil || len(ips) == 0 {
				return errAt(d, "host not found in %q of the \"listen\" directive", a)
			}
			ip, _ = netip.AddrFromSlice(ips[0])
			ip = ip.Unmap()
		}
		l.Wildcard = ip.IsUnspecified()
		l.Network = "tcp"
		if ip.Is6() {
			l.Network = "tcp6"
			l.IPv6Only = true
		}
		l.Addr = netip.AddrPortFrom(ip, uint16(p)).String()
	}
	for _, p := range d.Args[1:] {
		switch {
		case p == "default_server" || p == "default":
			isDefault = true
		case p == "reuseport":
			l.ReusePort = true
		case p == "ssl":
			l.SSL = true
		case p == "http2":
			c.note(d, `"listen ... http2": HTTP/2 is not implemented yet; TLS clients negotiate HTTP/1.1 through ALPN`)
		case strings.HasPrefix(p, "backlog="):
			n, err := strconv.Atoi(p[8:])
			if err != nil || n == 0 {
				return errAt(d, "invalid backlog %q", p[8:])
			}
			l.Backlog = n
		case strings.HasPrefix(p, "ipv6only="):
			l.IPv6Only = p[9:] == "on"
		case p == "deferred" || p == "bind" || strings.HasPrefix(p, "rcvbuf=") || strings.HasPrefix(p, "sndbuf=") ||
			strings.HasPrefix(p, "so_keepalive=") || strings.HasPrefix(p, "fastopen=") || strings.HasPrefix(p, "accept_filter="):
			c.note(d, fmt.Sprintf("listen parameter %q is accepted; socket options come from edgeproxy's tuning flags", p))
		default:
			return errAt(d, "invalid parameter %q", p)
		}
	}
	key := l.Network + " " + l.Addr
	ex, ok := c.listeners[key]
	if !ok {
		l.Names = route.NewServerNames()
		c.listeners[key] = l
		ex = l
	} else {
		if isDefault && ex.Default != nil && ex.defaultSet {
			return errAt(d, "a duplicate default server for %s", a)
		}
		if l.ReusePort {
			ex.ReusePort = true
		}
		if l.SSL {
			ex.SSL = true
		}
	}
	idx := len(ex.Servers)
	ex.Servers = append(ex.Servers, srv)
	if ex.Default == nil || (isDefault && !ex.defaultSet) {
		ex.Default = srv
		ex.defaultSet = isDefault
	}
	names := srv.Names
	if len(names) == 0 {
		names = []string{""}
	}
	if srv.NeedHostCaps {
		ex.NeedCaps = true
	}
	for _, n := range names {
		if _, err := ex.Names.Add(n, idx); err != nil {
			return errAt(d, "%s", err.Error())
		}
	}
	return nil
}

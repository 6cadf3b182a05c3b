// Package snapshot holds the compiled, immutable runtime form of an nginx
// configuration: listeners, virtual servers, locations and their merged
// settings. It is built once by Compile and then only read, concurrently, by
// every event loop; a reload builds a new Snapshot and swaps it atomically.
package snapshot

import (
	"time"

	"edgeproxy/accesslog"
	"edgeproxy/config"
	"edgeproxy/metrics"
	"edgeproxy/route"
	"edgeproxy/static"
)

// Snapshot is one compiled configuration. All fields are read-only after
// Compile returns, so any goroutine may read them without locks.
type Snapshot struct {
	Loops             int // worker_processes: number of event loops
	WorkerConnections int // per loop, as nginx's worker_connections
	RlimitNofile      int
	CPUAffinity       *CPUAffinity // worker_cpu_affinity; nil: not pinned
	PidFile           string
	ErrorLog          string // path, "stderr", or "" for the default
	ErrorLogLevel     string
	Daemon            bool
	ShutdownTimeout   time.Duration // worker_shutdown_timeout
	Prefix            string
	// TCPNoDelay is false when any level says "tcp_nodelay off"; gnet sets
	// socket options per engine, so it applies to every connection.
	TCPNoDelay bool

	Listeners []*Listener
	Maps      []*Map // `map` variables, indexed by Seg.CaptureN of VarMap
	Servers   []*Server
	Files     *static.Cache // shared open-file cache
	Logs      *accesslog.Registry
}

// Listener is one listening socket (address:port or unix path) and the
// virtual servers reachable through it.
type Listener struct {
	Network   string // "tcp" or "unix"
	Addr      string // "127.0.0.1:8080", "[::]:80", "/run/x.sock"
	Port      int    // 0 for unix sockets
	Wildcard  bool   // bound to 0.0.0.0 or [::]
	ReusePort bool
	Backlog   int
	IPv6Only  bool
	Default   *Server // default_server, or the first server listing it
	Names     *route.ServerNames
	Servers   []*Server // indexed by the route.ServerNames payload
	File      string
	Line      int

	// NeedCaps is set when a server on this socket uses captures of its
	// server_name regex.
	NeedCaps bool
	// SSL is set by "listen ... ssl": the TLS listener serves this socket
	// instead of gnet.
	SSL bool

	defaultSet bool // a server named this listener default_server explicitly
}

// Server is one `server {}` block.
type Server struct {
	Names     []string
	Name      string // first server_name, the value of $server_name
	Locations *route.Locations
	Locs      []*Location // indexed by the route payload
	Root      *Location   // settings of the server level, used for requests that match no location
	NameCaps  map[string]int
	// NeedCaps is set when some template of the server uses regex
	// captures; otherwise matching skips extracting them (no allocation).
	NeedCaps bool
	// NeedHostCaps is set when a template uses a server_name capture.
	NeedHostCaps bool
	HeaderLims   HeaderLimits
}

// HeaderLimits are the settings nginx takes from the default server of a
// listening socket before it knows the Host (ngx_http_wait_request_handler).
type HeaderLimits struct {
	ClientHeaderTimeout    time.Duration
	ClientHeaderBufferSize int
	LargeBuffers           int
	LargeBufferSize        int
	IgnoreInvalidHeaders   bool
	UnderscoresInHeaders   bool
	MergeSlashes           bool
}

// ReturnSpec is a compiled `return` directive.
type ReturnSpec struct {
	Code  int
	Text  Template // body text, or the URL for redirects
	IsURL bool     // code is a redirect and Text is the Location
	Has   bool     // whether Text was given at all
}

// ErrorPage is one code's entry of `error_page`.
type ErrorPage struct {
	Overwrite int // "=code": response code to use; 0 = keep; -1 = "=" alone (take the code of the target)
	URI       Template
	Named     *Location // @name target
	Redirect  bool      // URI is absolute (http:// ...): nginx answers 302 with Location
}

// AddHeader is one compiled `add_header`.
type AddHeader struct {
	Name   string
	Value  Template
	Always bool
}

// TryFiles is a compiled `try_files`.
type TryFiles struct {
	Files []Template
	Code  int       // =code fallback; 0 when the fallback is a URI or name
	URI   Template  // fallback URI (internal redirect)
	Named *Location // @name fallback
}

// Location holds one location's merged settings. The server level itself is
// also a Location (Server.Root) so a request matching no location still has
// settings, as in nginx.
type Location struct {
	Server   *Server
	Modifier string // "", "=", "^~", "~", "~*", "@"
	Pattern  string
	Named    bool
	Internal bool
	CapNames map[string]int // named captures available in this location's templates

	Root       Template
	Alias      Template
	HasAlias   bool
	AliasRegex bool // alias inside a regex location: the alias is the full path
	Index      []Template
	Try        *TryFiles
	Return     *ReturnSpec

	Types        *static.Types
	DefaultType  string
	Charset      string
	AddHeaders   []AddHeader
	Expires      static.Expires
	ErrorPages   map[int]*ErrorPage
	Etag         bool
	IMS          static.IMSMode
	ServerTokens bool
	LogNotFound  bool

	AbsoluteRedirect     bool
	PortInRedirect       bool
	ServerNameInRedirect bool
	RecursiveErrorPages  bool

	KeepaliveTimeout  time.Duration
	KeepaliveHeader   time.Duration // second keepalive_timeout argument: Keep-Alive: timeout=N
	KeepaliveRequests int
	ClientBodyTimeout time.Duration
	SendTimeout       time.Duration
	ClientMaxBodySize int64  // 0 = unlimited
	ClientBodyBuffer  int    // client_body_buffer_size: memory before the temporary file
	ClientBodyTemp    string // client_body_temp_path; "" = os.TempDir()
	Limits            Limits
	defaultTypeB      []byte
	Access            []AccessRule // allow/deny in order
	Gzip              Gzip
	Brotli, Zstd      Encoding  // edgeproxy extensions
	ErrorLog          *ErrorLog // error_log of this level (inherited)
	TLS               TLSConf
	AccessLogs        []AccessLog
	AccessOff         bool
	accessSet         bool
	ProxyConf         ProxyConf
	Cache             CacheConf
	Proxy             *Proxy // proxy_pass of this location; nil when none
	proxyPass         *config.Directive
	TCPNoDelay        bool
	// StatusPage is set by `stub_status` or `metrics` in this very block.
	StatusPage StatusPage
	// Stats counts this location's responses and latency (shared by the
	// snapshots of a reload when server and location are the same).
	Stats *metrics.Location
}

// Listener returns the listener for network and addr, or nil.
func (s *Snapshot) Listener(network, addr string) *Listener {
	for _, l := range s.Listeners {
		if l.Network == network && l.Addr == addr {
			return l
		}
	}
	return nil
}

// AnyStatic reports whether gzip_static, brotli_static or zstd_static is on.
func (l *Location) AnyStatic() bool {
	return l.Gzip.Static != GzipStaticOff || l.Brotli.Static != GzipStaticOff || l.Zstd.Static != GzipStaticOff
}

// DefaultTypeBytes is default_type as bytes, converted once per location
// rather than once per response.
func (l *Location) DefaultTypeBytes() []byte {
	if b := l.defaultTypeB; b != nil && string(b) == l.DefaultType {
		return b
	}
	return []byte(l.DefaultType)
}

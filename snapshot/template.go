package snapshot

import (
	"fmt"
	"strconv"
	"strings"
)

// VarID names a built-in variable. The compiler resolves every "$name" in a
// config string to a VarID (plus an argument for the prefixed families such as
// $http_NAME) once, so nothing is looked up by name at request time.
type VarID uint8

// Built-in variables, as documented for ngx_http_core_module.
const (
	VarNone VarID = iota
	VarHost
	VarURI // $uri and $document_uri
	VarRequestURI
	VarArgs // $args and $query_string
	VarIsArgs
	VarArg // $arg_NAME
	VarScheme
	VarHTTPS
	VarRemoteAddr
	VarBinaryRemoteAddr
	VarRemotePort
	VarServerName
	VarServerPort
	VarServerAddr
	VarServerProtocol
	VarRequestMethod
	VarHTTP   // $http_NAME
	VarCookie // $cookie_NAME
	VarStatus
	VarRequestID
	VarDocumentRoot
	VarRequestFilename
	VarContentLength
	VarContentType
	VarHostname
	VarNginxVersion
	VarPid
	VarMsec
	VarCapture // $1..$9 and named captures (Arg holds the number or name)
	VarConnection
	VarConnectionRequests
	VarRequest // $request: the request line
	VarTimeLocal
	VarTimeISO8601
	VarLimitReqStatus
	VarLimitConnStatus
	VarProxyHost
	VarProxyPort
	VarProxyAddXFF
	VarUpstreamAddr
	VarUpstreamStatus
	VarUpstreamResponseTime
	VarBodyBytesSent
	VarBytesSent
	VarRequestTime
	VarRequestLength
	VarPipe
	VarRemoteUser
	VarGzipRatio
	VarSSLProtocol
	VarSSLCipher
	VarSSLServerName
	VarSSLClientVerify
	VarSSLClientSDN
	VarSSLClientIDN
	VarSSLClientSerial
	VarSSLClientFingerprint
	VarSSLClientCert
	VarSSLClientRawCert
	VarSSLClientEscapedCert
	VarSSLClientVStart
	VarSSLClientVEnd
	VarSSLClientVRemain
	VarSSLSessionReused
	VarUpstreamCacheStatus
	VarMap // a `map` variable; CaptureN is its index in Snapshot.Maps
	// VarUnmeasured stands for $upstream_connect_time and
	// $upstream_header_time: fasthttp does not expose those phases, so they
	// log as "-" (documented) instead of refusing common log formats.
	VarUnmeasured
)

// Seg is one piece of a compiled template: a literal or a variable reference.
type Seg struct {
	Lit string // literal text when Var == VarNone
	Var VarID
	// Arg is the lower-cased, dash-folded header name for $http_NAME
	// ("user_agent" -> "user-agent"), the argument name for $arg_NAME, the
	// cookie name, or the capture name/number for VarCapture.
	Arg string
	// ArgBytes is Arg as bytes, for allocation-free header lookups.
	ArgBytes []byte
	// HostCap marks a named capture of a server_name regex (evaluated on
	// the Host), as opposed to one of a location regex.
	HostCap bool
	// CaptureN is the capture number for $1..$9 (-1 for a named capture).
	CaptureN int
}

// Template is a config string compiled into segments. The zero value is the
// empty string.
type Template struct {
	Raw  string
	Segs []Seg
}

// Const reports whether the template has no variables; Raw is then its value.
func (t *Template) Const() bool {
	for _, s := range t.Segs {
		if s.Var != VarNone {
			return false
		}
	}
	return true
}

// Uses reports whether the template references variable v.
func (t *Template) Uses(v VarID) bool {
	for _, s := range t.Segs {
		if s.Var == v {
			return true
		}
	}
	return false
}

var simpleVars = map[string]VarID{
	"host":                      VarHost,
	"uri":                       VarURI,
	"document_uri":              VarURI,
	"request_uri":               VarRequestURI,
	"args":                      VarArgs,
	"query_string":              VarArgs,
	"is_args":                   VarIsArgs,
	"scheme":                    VarScheme,
	"https":                     VarHTTPS,
	"remote_addr":               VarRemoteAddr,
	"binary_remote_addr":        VarBinaryRemoteAddr,
	"remote_port":               VarRemotePort,
	"server_name":               VarServerName,
	"server_port":               VarServerPort,
	"server_addr":               VarServerAddr,
	"server_protocol":           VarServerProtocol,
	"request_method":            VarRequestMethod,
	"status":                    VarStatus,
	"request_id":                VarRequestID,
	"document_root":             VarDocumentRoot,
	"request_filename":          VarRequestFilename,
	"content_length":            VarContentLength,
	"content_type":              VarContentType,
	"hostname":                  VarHostname,
	"nginx_version":             VarNginxVersion,
	"pid":                       VarPid,
	"msec":                      VarMsec,
	"connection":                VarConnection,
	"connection_requests":       VarConnectionRequests,
	"request":                   VarRequest,
	"time_local":                VarTimeLocal,
	"time_iso8601":              VarTimeISO8601,
	"limit_req_status":          VarLimitReqStatus,
	"limit_conn_status":         VarLimitConnStatus,
	"proxy_host":                VarProxyHost,
	"proxy_port":                VarProxyPort,
	"proxy_add_x_forwarded_for": VarProxyAddXFF,
	"upstream_addr":             VarUpstreamAddr,
	"upstream_status":           VarUpstreamStatus,
	"upstream_response_time":    VarUpstreamResponseTime,
	"body_bytes_sent":           VarBodyBytesSent,
	"bytes_sent":                VarBytesSent,
	"request_time":              VarRequestTime,
	"request_length":            VarRequestLength,
	"pipe":                      VarPipe,
	"remote_user":               VarRemoteUser,
	"gzip_ratio":                VarGzipRatio,
	"ssl_protocol":              VarSSLProtocol,
	"ssl_cipher":                VarSSLCipher,
	"ssl_server_name":           VarSSLServerName,
	"ssl_client_verify":         VarSSLClientVerify,
	"ssl_client_s_dn":           VarSSLClientSDN,
	"ssl_client_i_dn":           VarSSLClientIDN,
	"ssl_client_serial":         VarSSLClientSerial,
	"ssl_client_fingerprint":    VarSSLClientFingerprint,
	"ssl_client_cert":           VarSSLClientCert,
	"ssl_client_raw_cert":       VarSSLClientRawCert,
	"ssl_client_escaped_cert":   VarSSLClientEscapedCert,
	"ssl_client_v_start":        VarSSLClientVStart,
	"ssl_client_v_end":          VarSSLClientVEnd,
	"ssl_client_v_remain":       VarSSLClientVRemain,
	"ssl_session_reused":        VarSSLSessionReused,
	"upstream_cache_status":     VarUpstreamCacheStatus,
	"upstream_connect_time":     VarUnmeasured,
	"upstream_header_time":      VarUnmeasured,
}

// CompileTemplate parses nginx variable syntax ("$name", "${name}") in s.
// Unknown variables are an error, worded like nginx's
// `unknown "foo" variable`.
func CompileTemplate(s string) (Template, error) {
	t := Template{Raw: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.Segs = append(t.Segs, Seg{Lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		i++
		if i >= len(s) {
			return t, fmt.Errorf("invalid variable name in %q", s)
		}
		var name string
		if s[i] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return t, fmt.Errorf("the closing bracket in %q variable is missing", s[i+1:])
			}
			name = s[i+1 : i+end]
			i += end + 1
		} else {
			j := i
			for j < len(s) && isVarChar(s[j]) {
				j++
			}
			name = s[i:j]
			i = j
		}
		if name == "" {
			return t, fmt.Errorf("invalid variable name in %q", s)
		}
		seg, err := resolveVar(name)
		if err != nil {
			return t, err
		}
		flush()
		t.Segs = append(t.Segs, seg)
	}
	flush()
	return t, nil
}

func isVarChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func resolveVar(name string) (Seg, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n <= 9 {
		return Seg{Var: VarCapture, CaptureN: n}, nil
	}
	lname := strings.ToLower(name)
	if id, ok := simpleVars[lname]; ok {
		return Seg{Var: id}, nil
	}
	switch {
	case strings.HasPrefix(lname, "http_"):
		a := strings.ReplaceAll(lname[5:], "_", "-")
		return Seg{Var: VarHTTP, Arg: a, ArgBytes: []byte(a)}, nil
	case strings.HasPrefix(lname, "arg_"):
		return Seg{Var: VarArg, Arg: name[4:], ArgBytes: []byte(name[4:])}, nil
	case strings.HasPrefix(lname, "cookie_"):
		return Seg{Var: VarCookie, Arg: name[7:], ArgBytes: []byte(name[7:])}, nil
	}
	// A named regex capture is resolved when the template is bound to a
	// location (see bindCaptures); until then it is an unknown variable.
	return Seg{Var: VarCapture, Arg: name, CaptureN: -1}, nil
}

// checkCaptures verifies that every named capture in t is one the enclosing
// regex locations or server names define; otherwise the variable is unknown,
// as nginx says at config time.
func checkCaptures(t *Template, names, hostNames map[string]int) error {
	for i := range t.Segs {
		s := &t.Segs[i]
		if s.Var == VarCapture && s.CaptureN < 0 {
			if n, ok := names[s.Arg]; ok {
				s.CaptureN = n
				continue
			}
			if n, ok := hostNames[s.Arg]; ok {
				s.CaptureN, s.HostCap = n, true
				continue
			}
			return fmt.Errorf("unknown %q variable", s.Arg)
		}
	}
	return nil
}

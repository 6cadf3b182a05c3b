// Package proxy composes nginx's proxy_pass requests and responses
// independently of the event loop: the pipeline evaluates variables on its
// loop, hands a self-contained Job to a worker goroutine that calls Do, and
// writes the composed response back on the loop.
//
// Everything here mirrors nginx 1.22's ngx_http_proxy_module.c and
// ngx_http_upstream.c; each rule cites the function it follows. Config-time
// helpers (ParsePass, ParseRedirect, NewSettings, ImplicitGroup) are called
// once per configuration; Settings is immutable afterwards and safe for
// concurrent use by any goroutine.
package proxy

import (
	"errors"
	"fmt"
	"strings"
)

// Pass is a parsed proxy_pass argument. The zero value is not a valid pass;
// obtain one from ParsePass.
type Pass struct {
	// URL is the argument as written, e.g. "http://127.0.0.1:8000/app/";
	// nginx's plcf->url, the pattern of `proxy_redirect default`.
	URL string
	// Host is the host text after "http://" without port, or the socket
	// path for "unix:" URLs. For a pass without port it is also the name
	// of the `upstream {}` block the caller must look up (see Upstream).
	Host string
	// Port is the port text as written; "" when absent or for unix sockets.
	Port string
	// Unix is true for "http://unix:/path:" URLs.
	Unix bool
	// URI is the URI part ("/app/"), empty when the pass has none. nginx
	// distinguishes "no URI" from "/": "http://b" passes the client URI
	// unchanged, "http://b/" replaces the location prefix with "/".
	URI string
}

// HasURI reports whether the pass has a URI part (nginx's plcf->vars.uri.len
// != 0).
func (p *Pass) HasURI() bool { return p.URI != "" }

// Upstream returns the name of the `upstream {}` block this pass may refer
// to, or "" when it cannot refer to one (unix socket). nginx's
// ngx_http_upstream_add matches blocks by host name; a pass with an explicit
// port that names an existing block is an error ("upstream ... may not have
// port"), which the caller reports with UpstreamPortError. When no block
// of that name exists the caller creates ImplicitGroup(pass, ...).
func (p *Pass) Upstream() string {
	if p.Unix {
		return ""
	}
	return p.Host
}

// UpstreamPortError is the error nginx reports when a pass with a port
// names an existing upstream block (ngx_http_upstream_add); nil if the pass
// has no port.
func (p *Pass) UpstreamPortError() error {
	if p.Port == "" {
		return nil
	}
	return fmt.Errorf("upstream %q may not have port %s", p.Host, p.Port)
}

// Addr is the dial address of the single server of an implicit group:
// "host:port" (port 80 when absent) or "unix:/path".
func (p *Pass) Addr() string {
	if p.Unix {
		return "unix:" + p.Host
	}
	port := p.Port
	if port == "" {
		port = "80"
	}
	if strings.IndexByte(p.Host, ':') >= 0 && !strings.HasPrefix(p.Host, "[") {
		return "[" + p.Host + "]:" + port
	}
	return p.Host + ":" + port
}

// proxyHost is $proxy_host as ngx_http_proxy_set_vars forms it: host alone
// when there is no port or it is the default 80, host:port otherwise,
// "localhost" for unix sockets.
func (p *Pass) proxyHost() string {
	if p.Unix {
		return "localhost"
	}
	if p.Port == "" || p.Port == "80" {
		return p.Host
	}
	return p.Host + ":" + p.Port
}

// proxyPort is $proxy_port (ngx_http_proxy_set_vars): "80" without port or
// with the default one, the port text otherwise, "" for unix sockets.
func (p *Pass) proxyPort() string {
	if p.Unix {
		return ""
	}
	if p.Port == "" {
		return "80"
	}
	return p.Port
}

// ErrHTTPSUnsupported is returned by ParsePass for https:// upstreams.
var ErrHTTPSUnsupported = errors.New(`"proxy_pass" to https:// upstreams is not supported yet`)

// ErrPassVariables is returned by ParsePass for a proxy_pass containing
// variables.
var ErrPassVariables = errors.New(`"proxy_pass" with variables is not supported yet`)

// ParsePass parses a proxy_pass argument as ngx_http_proxy_pass and
// ngx_parse_url (with uri_part set) do. Accepted: "http://host[:port][/uri]"
// and "http://unix:/path[:uri]". https:// and variables are refused with
// ErrHTTPSUnsupported / ErrPassVariables; other prefixes with nginx's
// "invalid URL prefix".
func ParsePass(arg string) (Pass, error) {
	if hasVariable(arg) {
		return Pass{}, ErrPassVariables
	}
	var rest string
	switch {
	case hasPrefixFold(arg, "http://"):
		rest = arg[7:]
	case hasPrefixFold(arg, "https://"):
		return Pass{}, ErrHTTPSUnsupported
	default:
		return Pass{}, fmt.Errorf(`invalid URL prefix in "%s"`, arg)
	}
	p := Pass{URL: arg}
	if hasPrefixFold(rest, "unix:") {
		// ngx_parse_unix_domain_url: with uri_part the path ends at the
		// first ':' after "unix:", the rest is the URI.
		path := rest[5:]
		if i := strings.IndexByte(path, ':'); i >= 0 {
			p.URI = path[i+1:]
			path = path[:i]
		}
		if path == "" {
			return Pass{}, fmt.Errorf(`no path in the unix domain socket in "%s"`, arg)
		}
		p.Unix, p.Host = true, path
		return p, nil
	}
	// ngx_parse_inet_url: the URI starts at the first '/' or '?'.
	hostport := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hostport, p.URI = rest[:i], rest[i:]
	}
	if hostport == "" {
		return Pass{}, fmt.Errorf(`no host in "%s"`, arg)
	}
	colon := false
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return Pass{}, fmt.Errorf(`invalid IPv6 address in "%s"`, arg)
		}
		p.Host = hostport[:end+1]
		if tail := hostport[end+1:]; tail != "" {
			if tail[0] != ':' {
				return Pass{}, fmt.Errorf(`invalid host in "%s"`, arg)
			}
			p.Port, colon = tail[1:], true
		}
	} else if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		p.Host, p.Port, colon = hostport[:i], hostport[i+1:], true
	} else {
		p.Host = hostport
	}
	if p.Host == "" || p.Host == "[]" {
		return Pass{}, fmt.Errorf(`no host in "%s"`, arg)
	}
	if colon {
		n := 0
		for _, c := range p.Port {
			if c < '0' || c > '9' {
				return Pass{}, fmt.Errorf(`invalid port in "%s"`, arg)
			}
			n = n*10 + int(c-'0')
			if n > 65535 {
				return Pass{}, fmt.Errorf(`invalid port in "%s"`, arg)
			}
		}
		if p.Port == "" || n < 1 {
			return Pass{}, fmt.Errorf(`invalid port in "%s"`, arg)
		}
	}
	return p, nil
}

// hasVariable mirrors ngx_http_script_variables_count: any '$' followed by
// a name character or '{' starts a variable.
func hasVariable(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		c := s[i+1]
		if c == '{' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// RedirectRule is one literal `proxy_redirect REDIRECT REPLACEMENT` rule:
// a Location/Refresh value starting with Pattern (case-sensitively, as
// ngx_http_proxy_rewrite_complex_handler's ngx_rstrncmp) has that prefix
// replaced by Replacement.
type RedirectRule struct {
	Pattern, Replacement string
	// Default marks the `default` rule, resolved by NewSettings from the
	// pass and the location.
	Default bool
}

// Redirects is the proxy_redirect configuration of a location. The zero
// value is nginx's default: no proxy_redirect directive, which behaves like
// `proxy_redirect default`.
type Redirects struct {
	// Off is `proxy_redirect off`.
	Off bool
	// Rules are the directives in order; first match wins
	// (ngx_http_proxy_rewrite_redirect). Empty with Off false means the
	// implicit default rule.
	Rules []RedirectRule
}

// ParseRedirect adds one proxy_redirect directive (its arguments) to r, as
// ngx_http_proxy_redirect does: "off" (only alone), "default", or a literal
// REDIRECT REPLACEMENT pair. Regex patterns ("~", "~*") and variables are
// refused (not supported yet).
func (r *Redirects) ParseRedirect(args []string) error {
	switch len(args) {
	case 1:
		switch args[0] {
		case "off", "false":
			if len(r.Rules) > 0 {
				return errors.New(`invalid parameter "off"`)
			}
			r.Off = true
			return nil
		case "default":
			if r.Off {
				return errors.New(`"proxy_redirect default" cannot be used with "proxy_redirect off"`)
			}
			r.Rules = append(r.Rules, RedirectRule{Default: true})
			return nil
		}
		return fmt.Errorf(`invalid parameter "%s"`, args[0])
	case 2:
		if r.Off {
			return errors.New(`"proxy_redirect" cannot be used after "proxy_redirect off"`)
		}
		if strings.HasPrefix(args[0], "~") {
			return fmt.Errorf(`regular expression in "proxy_redirect %s" is not supported yet`, args[0])
		}
		if hasVariable(args[0]) || hasVariable(args[1]) {
			return errors.New(`variables in "proxy_redirect" are not supported yet`)
		}
		r.Rules = append(r.Rules, RedirectRule{Pattern: args[0], Replacement: args[1]})
		return nil
	}
	return errors.New(`invalid number of arguments in "proxy_redirect" directive`)
}

// ParseRedirect parses the proxy_redirect directives of one location, each
// element of dirs being one directive's arguments, in order.
func ParseRedirect(dirs ...[]string) (Redirects, error) {
	var r Redirects
	for _, d := range dirs {
		if err := r.ParseRedirect(d); err != nil {
			return Redirects{}, err
		}
	}
	return r, nil
}

package pipeline

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"

	"edgeproxy/snapshot"
)

var (
	hostname, _  = os.Hostname()
	pidString    = strconv.Itoa(os.Getpid())
	nginxVersion = "1.22.1"
)

// eval appends the value of a compiled template. It allocates nothing.
func (c *Conn) eval(dst []byte, t *snapshot.Template) []byte {
	for i := range t.Segs {
		s := &t.Segs[i]
		if s.Var == snapshot.VarNone {
			dst = append(dst, s.Lit...)
			continue
		}
		dst = c.appendVar(dst, s)
	}
	return dst
}

// appendVar appends one variable's value (ngx_http_variables.c semantics).
func (c *Conn) appendVar(dst []byte, s *snapshot.Seg) []byte {
	x := &c.w.x
	r := &c.w.req
	switch s.Var {
	case snapshot.VarHost:
		if h := r.Host(); len(h) > 0 {
			return append(dst, h...)
		}
		// No Host: the matched server's name, possibly empty (nginx).
		if x.srv != nil {
			return append(dst, x.srv.Name...)
		}
		return dst
	case snapshot.VarURI:
		return append(dst, x.uri...)
	case snapshot.VarRequestURI:
		return append(dst, r.URI()...)
	case snapshot.VarArgs:
		return append(dst, x.args...)
	case snapshot.VarIsArgs:
		if len(x.args) > 0 {
			return append(dst, '?')
		}
		return dst
	case snapshot.VarArg:
		return append(dst, argValue(x.args, s.ArgBytes)...)
	case snapshot.VarScheme:
		if c.tls {
			return append(dst, "https"...)
		}
		return append(dst, "http"...)
	case snapshot.VarHTTPS:
		if c.tls {
			return append(dst, "on"...)
		}
		return dst
	case snapshot.VarRemoteAddr:
		if !c.remote.IsValid() {
			return append(dst, "unix:"...)
		}
		return appendAddr(dst, c.remote.Addr())
	case snapshot.VarBinaryRemoteAddr:
		if !c.remote.IsValid() {
			return dst
		}
		a := c.remote.Addr()
		if a.Is4() {
			b := a.As4()
			return append(dst, b[:]...)
		}
		b := a.As16()
		return append(dst, b[:]...)
	case snapshot.VarRemotePort:
		if !c.remote.IsValid() {
			return dst
		}
		return strconv.AppendUint(dst, uint64(c.remote.Port()), 10)
	case snapshot.VarServerName:
		if x.srv != nil {
			return append(dst, x.srv.Name...)
		}
		return dst
	case snapshot.VarServerPort:
		if !c.local.IsValid() {
			return dst
		}
		return strconv.AppendUint(dst, uint64(c.local.Port()), 10)
	case snapshot.VarServerAddr:
		if !c.local.IsValid() {
			return append(dst, "unix:"...)
		}
		return appendAddr(dst, c.local.Addr())
	case snapshot.VarServerProtocol:
		dst = append(dst, "HTTP/"...)
		major, minor := r.Proto()
		dst = strconv.AppendInt(dst, int64(major), 10)
		dst = append(dst, '.')
		return strconv.AppendInt(dst, int64(minor), 10)
	case snapshot.VarRequestMethod:
		return append(dst, r.Method()...)
	case snapshot.VarHTTP:
		return append(dst, r.Header(s.ArgBytes)...)
	case snapshot.VarCookie:
		return append(dst, cookieValue(r.Header(hCookie), s.Arg)...)
	case snapshot.VarStatus:
		st := x.status
		if st == 0 {
			st = 200
		}
		return strconv.AppendInt(dst, int64(st), 10)
	case snapshot.VarRequestID:
		if !x.reqIDSet {
			var raw [16]byte
			a, b := rand.Uint64(), rand.Uint64()
			for i := 0; i < 8; i++ {
				raw[i] = byte(a >> (8 * i))
				raw[8+i] = byte(b >> (8 * i))
			}
			hex.Encode(x.reqID[:], raw[:])
			x.reqIDSet = true
		}
		return append(dst, x.reqID[:]...)
	case snapshot.VarDocumentRoot:
		return append(dst, x.docRoot...)
	case snapshot.VarRequestFilename:
		return append(dst, x.path...)
	case snapshot.VarContentLength:
		return append(dst, r.Header(hContentLength)...)
	case snapshot.VarContentType:
		return append(dst, r.Header(hContentType)...)
	case snapshot.VarHostname:
		return append(dst, hostname...)
	case snapshot.VarNginxVersion:
		return append(dst, nginxVersion...)
	case snapshot.VarPid:
		return append(dst, pidString...)
	case snapshot.VarMsec:
		now := c.clock()
		dst = strconv.AppendInt(dst, now.Unix(), 10)
		dst = append(dst, '.')
		ms := now.Nanosecond() / 1e6
		return append(dst, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	case snapshot.VarConnection:
		return strconv.AppendUint(dst, c.id, 10)
	case snapshot.VarConnectionRequests:
		return strconv.AppendInt(dst, int64(c.requests), 10)
	case snapshot.VarRequest:
		h := r.HeadBytes()
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			h = bytes.TrimRight(h[:i], "\r")
		}
		return append(dst, h...)
	case snapshot.VarTimeLocal:
		return c.appendLocalTime(dst, false)
	case snapshot.VarTimeISO8601:
		return c.appendLocalTime(dst, true)
	case snapshot.VarLimitReqStatus:
		return append(dst, c.limitReq.String()...)
	case snapshot.VarLimitConnStatus:
		return append(dst, c.limitConn.String()...)
	case snapshot.VarProxyHost, snapshot.VarProxyPort, snapshot.VarProxyAddXFF:
		return c.proxyVar(dst, s.Var)
	case snapshot.VarUpstreamAddr:
		return append(dst, x.upstreamAddr...)
	case snapshot.VarUpstreamStatus:
		return append(dst, x.upstreamStatus...)
	case snapshot.VarUpstreamResponseTime:
		return append(dst, x.upstreamTime...)
	case snapshot.VarMap:
		m := c.snap.Maps[s.CaptureN]
		x.mapDepth++
		if x.mapDepth > 8 {
			x.mapDepth--
			return dst // a map that refers to itself
		}
		start := len(dst)
		dst = c.eval(dst, &m.Source)
		key := dst[start:]
		t := m.Lookup(key)
		dst = dst[:start]
		if t != nil {
			dst = c.eval(dst, t)
		}
		x.mapDepth--
		return dst
	case snapshot.VarUpstreamCacheStatus:
		return append(dst, x.cacheStatus...)
	case snapshot.VarSSLProtocol:
		return append(dst, c.tlsProto...)
	case snapshot.VarSSLCipher:
		return append(dst, c.tlsCipher...)
	case snapshot.VarSSLServerName:
		return append(dst, c.tlsSNI...)
	case snapshot.VarSSLSessionReused:
		if !c.tls {
			return dst
		}
		if c.tlsReused {
			return append(dst, 'r')
		}
		return append(dst, '.')
	case snapshot.VarSSLClientVerify, snapshot.VarSSLClientSDN, snapshot.VarSSLClientIDN, snapshot.VarSSLClientSerial,
		snapshot.VarSSLClientFingerprint, snapshot.VarSSLClientCert, snapshot.VarSSLClientRawCert,
		snapshot.VarSSLClientEscapedCert, snapshot.VarSSLClientVStart, snapshot.VarSSLClientVEnd, snapshot.VarSSLClientVRemain:
		return c.appendClientCertVar(dst, s.Var)
	case snapshot.VarCapture:
		n := s.CaptureN
		if s.HostCap {
			if 2*n+1 < len(x.hostCaps) && x.hostCaps[2*n] >= 0 {
				return append(dst, x.hostSrc[x.hostCaps[2*n]:x.hostCaps[2*n+1]]...)
			}
			return dst
		}
		if 2*n+1 < len(x.caps) && x.caps[2*n] >= 0 {
			return append(dst, x.capSrc[x.caps[2*n]:x.caps[2*n+1]]...)
		}
		return dst
	}
	return dst
}

func appendAddr(dst []byte, a netip.Addr) []byte {
	return a.Unmap().AppendTo(dst)
}

// argValue finds name in a query string; names compare case-insensitively
// as in ngx_http_arg.
func argValue(args []byte, name []byte) []byte {
	for len(args) > 0 {
		var kv []byte
		if i := bytes.IndexByte(args, '&'); i >= 0 {
			kv, args = args[:i], args[i+1:]
		} else {
			kv, args = args, nil
		}
		k, v := kv, []byte(nil)
		if i := bytes.IndexByte(kv, '='); i >= 0 {
			k, v = kv[:i], kv[i+1:]
		}
		if len(k) == len(name) && bytes.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// cookieValue finds a cookie by exact name in a Cookie header.
func cookieValue(h []byte, name string) []byte {
	for len(h) > 0 {
		var kv []byte
		if i := bytes.IndexByte(h, ';'); i >= 0 {
			kv, h = h[:i], h[i+1:]
		} else {
			kv, h = h, nil
		}
		kv = bytes.TrimLeft(kv, " ")
		if i := bytes.IndexByte(kv, '='); i >= 0 && string(kv[:i]) == name {
			return kv[i+1:]
		}
	}
	return nil
}

var (
	hCookie        = []byte("cookie")
	hContentLength = []byte("content-length")
	hContentType   = []byte("content-type")
)

// appendClientCertVar appends a $ssl_client_* variable: empty on plaintext
// connections, "NONE" for $ssl_client_verify without a certificate.
func (c *Conn) appendClientCertVar(dst []byte, v snapshot.VarID) []byte {
	if !c.tls {
		return dst
	}
	cc := c.clientCert
	if cc == nil {
		if v == snapshot.VarSSLClientVerify {
			return append(dst, "NONE"...)
		}
		return dst
	}
	switch v {
	case snapshot.VarSSLClientVerify:
		return append(dst, cc.Verify...)
	case snapshot.VarSSLClientSDN:
		return append(dst, cc.SDN...)
	case snapshot.VarSSLClientIDN:
		return append(dst, cc.IDN...)
	case snapshot.VarSSLClientSerial:
		return append(dst, cc.Serial...)
	case snapshot.VarSSLClientFingerprint:
		return append(dst, cc.Fingerprint...)
	case snapshot.VarSSLClientCert:
		return append(dst, cc.Cert...)
	case snapshot.VarSSLClientRawCert:
		return append(dst, cc.RawPEM...)
	case snapshot.VarSSLClientEscapedCert:
		return append(dst, cc.EscapedPEM...)
	case snapshot.VarSSLClientVStart:
		return append(dst, cc.VStart...)
	case snapshot.VarSSLClientVEnd:
		return append(dst, cc.VEnd...)
	case snapshot.VarSSLClientVRemain:
		if !cc.Present {
			return dst
		}
		// ngx_ssl_get_client_v_remain: whole days left, 0 once expired.
		days := (cc.NotAfterSec - c.clock().Unix()) / 86400
		if days < 0 {
			days = 0
		}
		return strconv.AppendInt(dst, days, 10)
	}
	return dst
}

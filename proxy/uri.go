package proxy

import "bytes"

// AppendUpstreamURI appends the request URI sent upstream, following
// ngx_http_proxy_create_request:
//
//   - pass without URI part and uriChanged false: requestURI, the raw
//     $request_uri as the client sent it (r->unparsed_uri), unchanged;
//   - otherwise: the pass URI (if any) replaces the location prefix of
//     normalisedURI ($uri, decoded and normalised); the remainder is
//     escaped with ngx_escape_uri(NGX_ESCAPE_URI) when the client URI was
//     percent-encoded (r->quoted_uri, detected from requestURI) or the
//     request was redirected (r->internal), else copied; then "?" + args
//     when args is non-empty.
//
// uriChanged is nginx's !r->valid_unparsed_uri: the URI was changed by
// rewrite or an internal redirect to a URI (try_files fallback URI, index,
// error_page URI). A jump to a named location does not change it. It does
// not allocate beyond growing dst; safe for concurrent use.
func (s *Settings) AppendUpstreamURI(dst, requestURI, normalisedURI, args []byte, uriChanged bool) []byte {
	if !s.pass.HasURI() && !uriChanged {
		return append(dst, requestURI...)
	}
	locLen := 0
	if s.pass.HasURI() {
		dst = append(dst, s.pass.URI...)
		locLen = len(s.location)
		if locLen > len(normalisedURI) {
			// Cannot happen for a URI matched by the location; guard
			// against callers passing a shorter URI.
			locLen = len(normalisedURI)
		}
	}
	return appendURIRest(dst, normalisedURI[locLen:], args, uriChanged || quotedURI(requestURI))
}

// AppendRewrittenURI appends the upstream URI after `rewrite ... break`
// changed the URI inside the proxied location (nginx clears
// r->valid_location): the pass URI part is ignored and the whole escaped
// $uri plus "?args" is sent.
func (s *Settings) AppendRewrittenURI(dst, normalisedURI, args []byte) []byte {
	return appendURIRest(dst, normalisedURI, args, true)
}

func appendURIRest(dst, rest, args []byte, escape bool) []byte {
	if escape {
		dst = appendEscapeURI(dst, rest)
	} else {
		dst = append(dst, rest...)
	}
	if len(args) > 0 {
		dst = append(dst, '?')
		dst = append(dst, args...)
	}
	return dst
}

// quotedURI is r->quoted_uri: ngx_http_parse_request_line sets it for a
// '%' in the path (not in the arguments).
func quotedURI(requestURI []byte) bool {
	path := requestURI
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return bytes.IndexByte(path, '%') >= 0
}

// escapeURI is ngx_escape_uri's NGX_ESCAPE_URI table: control characters,
// space, '#', '%', '?', DEL and bytes >= 0x80.
var escapeURI = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c <= 0x20 || c == '#' || c == '%' || c == '?' || c >= 0x7f
	}
	return t
}()

func appendEscapeURI(dst, src []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range src {
		if escapeURI[c] {
			dst = append(dst, '%', hex[c>>4], hex[c&0xf])
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

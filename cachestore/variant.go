package cachestore

// RequestHeaders is the read access to a request's header lines that
// AppendVariant needs; *http1.Request provides it. Implementations must
// not allocate for these calls if Lookup is to stay allocation-free.
type RequestHeaders interface {
	NumHeaders() int
	HeaderAt(i int) (name, value []byte)
}

// NormalizeVary appends to dst the names of a response's Vary lines,
// lowercased and joined by ',' in the order sent (what nginx's
// ngx_http_file_cache_vary hashes), and returns nil when there are none.
// Any goroutine may call it.
func NormalizeVary(dst []byte, vary [][]byte) []byte {
	start := len(dst)
	for _, v := range vary {
		for p := 0; p < len(v); {
			for p < len(v) && (v[p] == ',' || v[p] == ' ' || v[p] == '\t' || v[p] == ':') {
				p++
			}
			s := p
			for p < len(v) && v[p] != ',' && v[p] != ' ' && v[p] != '\t' && v[p] != ':' {
				p++
			}
			if p == s {
				continue
			}
			if len(dst) > start {
				dst = append(dst, ',')
			}
			for _, c := range v[s:p] {
				dst = append(dst, lower(c))
			}
		}
	}
	if len(dst) == start {
		return nil
	}
	return dst
}

// AppendVariant appends the variant (secondary key) of a request for
// responses with these Vary names: for each name, "name:" then the values
// of the request's lines with that name joined by ',', then '\n'. As in
// ngx_http_file_cache_vary_header, Accept-Encoding and Accept-Charset values
// are normalised (spaces and empty list members dropped) so that "gzip,
// br" and "gzip,br" share a variant; other values are taken as sent.
//
// Choice: unlike nginx 1.22, which keeps one variant per key and replaces
// it, a zone keeps several variants of a key (RFC 9111 4.1): a Vary marker
// under the primary key names the headers, and each variant is an entry
// under primary key + 0 byte + variant. Lookup does both steps.
// AppendVariant allocates only when dst must grow. Any goroutine may call
// it.
func AppendVariant(dst, varyNames []byte, req RequestHeaders) []byte {
	for p := 0; p < len(varyNames); {
		s := p
		for p < len(varyNames) && varyNames[p] != ',' {
			p++
		}
		name := varyNames[s:p]
		p++
		dst = append(dst, name...)
		dst = append(dst, ':')
		norm := eqFold(name, "accept-encoding") || eqFold(name, "accept-charset")
		first := true
		n := req.NumHeaders()
		for i := 0; i < n; i++ {
			hn, hv := req.HeaderAt(i)
			if !eqFoldBytes(hn, name) {
				continue
			}
			if !norm {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = append(dst, trimOWS(hv)...)
				continue
			}
			for q := 0; q < len(hv); {
				for q < len(hv) && (hv[q] == ' ' || hv[q] == ',' || hv[q] == '\t') {
					q++
				}
				t := q
				for q < len(hv) && hv[q] != ',' && hv[q] != ' ' && hv[q] != '\t' {
					q++
				}
				if q == t {
					break
				}
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = append(dst, hv[t:q]...)
			}
		}
		dst = append(dst, '\n')
	}
	return dst
}

// eqFoldBytes compares a with the lowercase b, ignoring a's case.
func eqFoldBytes(a, lowerB []byte) bool {
	if len(a) != len(lowerB) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lowerB[i] {
			return false
		}
	}
	return true
}

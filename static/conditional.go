package static

// IMSMode is the `if_modified_since` directive. The zero value is
// IMSExact, nginx's default.
type IMSMode uint8

const (
	// IMSExact: 304 only if If-Modified-Since equals Last-Modified.
	IMSExact IMSMode = iota
	// IMSBefore: 304 if If-Modified-Since is at or after Last-Modified.
	IMSBefore
	// IMSOff: If-Modified-Since is ignored.
	IMSOff
)

// Conditional evaluates the request preconditions against f as nginx's
// ngx_http_not_modified_filter_module does for a 200 response, returning 0
// (serve the response), 304 (Not Modified) or 412 (Precondition Failed).
//
// A nil slice means the header is absent; a non-nil empty slice means it
// was sent empty (which matters: an empty If-Match or an unparsable
// If-Unmodified-Since fails, as in nginx). etag reports whether the `etag`
// directive is on; when off, the response has no ETag and only "*" matches.
//
// nginx's order and semantics, which differ from RFC 9110 section 13.2.2 in
// two ways callers may notice:
//   - If-Unmodified-Since is checked before If-Match (both yield 412), and
//     is applied even when If-Match is present;
//   - when both If-Modified-Since and If-None-Match are present, BOTH must
//     indicate "not modified" for a 304 (RFC 9110 says to ignore
//     If-Modified-Since); If-None-Match does not take precedence.
//
// If-None-Match uses weak comparison (W/ prefixes are ignored); If-Match
// uses nginx's byte comparison, so W/"x" never matches. Does not allocate;
// safe from any goroutine.
func Conditional(f *File, ifModifiedSince, ifNoneMatch, ifMatch, ifUnmodifiedSince []byte, mode IMSMode, etag bool) int {
	mtime := f.ModTime.Unix()
	var tag []byte
	if etag {
		tag = f.ETag
	}
	if ifUnmodifiedSince != nil {
		// ngx_http_test_if_unmodified: an unparsable date is -1, which is
		// below any real mtime, so it fails.
		if ParseHTTPTime(ifUnmodifiedSince) < mtime {
			return 412
		}
	}
	if ifMatch != nil && !matchETag(ifMatch, tag, false) {
		return 412
	}
	if ifModifiedSince == nil && ifNoneMatch == nil {
		return 0
	}
	if ifModifiedSince != nil && modifiedSince(ifModifiedSince, mtime, mode) {
		return 0
	}
	if ifNoneMatch != nil && !matchETag(ifNoneMatch, tag, true) {
		return 0
	}
	return 304
}

// modifiedSince is ngx_http_test_if_modified.
func modifiedSince(v []byte, mtime int64, mode IMSMode) bool {
	if mode == IMSOff {
		return true
	}
	ims := ParseHTTPTime(v)
	if ims == mtime {
		return false
	}
	return mode == IMSExact || ims < mtime
}

// matchETag is ngx_http_test_if_match: list is a comma-separated entity tag
// list, tag is the response's ETag (nil if none).
func matchETag(list, tag []byte, weak bool) bool {
	if len(list) == 1 && list[0] == '*' {
		return true
	}
	if tag == nil {
		return false
	}
	if weak && len(tag) > 2 && tag[0] == 'W' && tag[1] == '/' {
		tag = tag[2:]
	}
	p, end := 0, len(list)
	for p < end {
		if weak && end-p > 2 && list[p] == 'W' && list[p+1] == '/' {
			p += 2
		}
		if len(tag) > end-p {
			return false
		}
		if string(list[p:p+len(tag)]) == string(tag) {
			p += len(tag)
			for p < end && (list[p] == ' ' || list[p] == '\t') {
				p++
			}
			if p == end || list[p] == ',' {
				return true
			}
		}
		for p < end && list[p] != ',' {
			p++
		}
		for p < end && (list[p] == ' ' || list[p] == '\t' || list[p] == ',') {
			p++
		}
	}
	return false
}

// IfRange reports whether a Range header may be honoured given the If-Range
// header v (nil when absent), as ngx_http_range_header_filter decides: a
// value ending in '"' is an entity tag compared byte-for-byte with the ETag
// (no ETag when etag is off means no match); anything else is a date that
// must equal Last-Modified exactly. When false, send the full 200 response.
// Does not allocate.
func IfRange(f *File, v []byte, etag bool) bool {
	if v == nil {
		return true
	}
	if len(v) >= 2 && v[len(v)-1] == '"' {
		return etag && string(v) == string(f.ETag)
	}
	return ParseHTTPTime(v) == f.ModTime.Unix()
}

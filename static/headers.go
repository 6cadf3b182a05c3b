package static

// AppendFileHeaders appends the validator header lines of f in the order
// nginx sends them:
//
//	Last-Modified: Wed, 25 Nov 2026 16:22:22 GMT\r\n
//	ETag: "6b070b3e-6"\r\n          (only when etag is true)
//
// nginx emits Last-Modified among its built-in headers (after
// Content-Length, ngx_http_header_filter_module.c) and ETag from the
// header list afterwards (it puts Connection between them; callers that
// want byte-identical output write Connection before calling this with
// etag=false and then AppendETagHeader). Use it for 200, 206 and 304
// responses; nginx keeps both on 304. Does not allocate when dst has room;
// safe from any goroutine.
func AppendFileHeaders(dst []byte, f *File, etag bool) []byte {
	dst = append(dst, "Last-Modified: "...)
	dst = append(dst, f.LastModified...)
	dst = append(dst, "\r\n"...)
	if etag {
		dst = AppendETagHeader(dst, f)
	}
	return dst
}

// AppendETagHeader appends "ETag: <f.ETag>\r\n".
func AppendETagHeader(dst []byte, f *File) []byte {
	dst = append(dst, "ETag: "...)
	dst = append(dst, f.ETag...)
	return append(dst, "\r\n"...)
}

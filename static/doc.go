// Package static implements the request-time pieces of nginx's static
// file serving for edgeproxy's event loops: an open-file metadata cache
// (Cache, File), MIME types (Types), validators (ETag, Last-Modified),
// conditional requests (Conditional, IfRange), byte ranges (ParseRange,
// Multipart) and the `expires` directive (Expires).
//
// Behaviour follows nginx 1.22 (ngx_http_static_module.c,
// ngx_http_not_modified_filter_module.c, ngx_http_range_filter_module.c,
// ngx_http_headers_filter_module.c) and is checked against a real nginx by
// the differential tests. Everything called per request is
// allocation-free in steady state and only blocks for stat/open/short reads.
//
// nginx's filter order for a static file is: If-Unmodified-Since/If-Match
// (412), If-Modified-Since/If-None-Match (304), then expires headers (for
// 200/304 etc.), then If-Range/Range (206/416). A 304 therefore wins over
// Range, a 412 carries no Expires/Cache-Control, and a 416 does.
package static

package http1

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ServerName replaces "nginx" in error pages (server_tokens off) and
// ServerVersion replaces "nginx/1.22.1" (server_tokens on).
const (
	ServerName    = "edgeproxy"
	ServerVersion = "edgeproxy/0.1.0"
)

// reasons are nginx's status lines (ngx_http_status_lines), checked
// against nginx 1.22. Note nginx's wording: "302 Moved Temporarily",
// "405 Not Allowed", "503 Service Temporarily Unavailable".
var reasons = map[int]string{
	100: "Continue",
	101: "Switching Protocols",
	200: "OK",
	201: "Created",
	202: "Accepted",
	204: "No Content",
	206: "Partial Content",
	301: "Moved Permanently",
	302: "Moved Temporarily",
	303: "See Other",
	304: "Not Modified",
	307: "Temporary Redirect",
	308: "Permanent Redirect",
	400: "Bad Request",
	401: "Unauthorized",
	402: "Payment Required",
	403: "Forbidden",
	404: "Not Found",
	405: "Not Allowed",
	406: "Not Acceptable",
	408: "Request Time-out",
	409: "Conflict",
	410: "Gone",
	411: "Length Required",
	412: "Precondition Failed",
	413: "Request Entity Too Large",
	414: "Request-URI Too Large",
	415: "Unsupported Media Type",
	416: "Requested Range Not Satisfiable",
	421: "Misdirected Request",
	429: "Too Many Requests",
	500: "Internal Server Error",
	501: "Not Implemented",
	502: "Bad Gateway",
	503: "Service Temporarily Unavailable",
	504: "Gateway Time-out",
	505: "HTTP Version Not Supported",
	507: "Insufficient Storage",
}

var statusLines [600][]byte

// pageTitles are the titles of nginx's built-in error pages
// (ngx_http_special_response.c); they differ from the status lines for
// 302 ("Found") and 401 ("Authorization Required").
var pageTitles = map[int]string{
	301: "301 Moved Permanently",
	302: "302 Found",
	303: "303 See Other",
	307: "307 Temporary Redirect",
	308: "308 Permanent Redirect",
	400: "400 Bad Request",
	401: "401 Authorization Required",
	402: "402 Payment Required",
	403: "403 Forbidden",
	404: "404 Not Found",
	405: "405 Not Allowed",
	406: "406 Not Acceptable",
	408: "408 Request Time-out",
	409: "409 Conflict",
	410: "410 Gone",
	411: "411 Length Required",
	412: "412 Precondition Failed",
	413: "413 Request Entity Too Large",
	414: "414 Request-URI Too Large",
	415: "415 Unsupported Media Type",
	416: "416 Requested Range Not Satisfiable",
	421: "421 Misdirected Request",
	429: "429 Too Many Requests",
	500: "500 Internal Server Error",
	501: "501 Not Implemented",
	502: "502 Bad Gateway",
	503: "503 Service Temporarily Unavailable",
	504: "504 Gateway Time-out",
	505: "505 HTTP Version Not Supported",
	507: "507 Insufficient Storage",
}

// nginx's internal 4xx codes, sent as "400 Bad Request" with a second line.
var page400 = map[int]string{
	494: "Request Header Or Cookie Too Large",
	495: "The SSL certificate error",
	496: "No required SSL certificate was sent",
	497: "The plain HTTP request was sent to HTTPS port",
}

var errorPages [2][600][]byte

func init() {
	for code := 100; code < 600; code++ {
		statusLines[code] = []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + reasons[code] + "\r\n")
	}
	for code := range page400 {
		statusLines[code] = statusLines[400]
	}
	for i, tok := range [2]string{ServerName, ServerVersion} {
		tail := "<hr><center>" + tok + "</center>\r\n</body>\r\n</html>\r\n"
		for code, title := range pageTitles {
			errorPages[i][code] = []byte("<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n" +
				"<center><h1>" + title + "</h1></center>\r\n" + tail)
		}
		for code, msg := range page400 {
			errorPages[i][code] = []byte("<html>\r\n<head><title>400 " + msg + "</title></head>\r\n<body>\r\n" +
				"<center><h1>400 Bad Request</h1></center>\r\n<center>" + msg + "</center>\r\n" + tail)
		}
	}
}

// StatusText returns nginx's reason phrase for code, "" if nginx has none
// (it then sends "HTTP/1.1 299 "). 494-497 map to "Bad Request".
func StatusText(code int) string {
	if _, ok := page400[code]; ok {
		return reasons[400]
	}
	return reasons[code]
}

// AppendStatusLine appends nginx's status line for status, e.g.
// "HTTP/1.1 200 OK\r\n"; 494-497 become "HTTP/1.1 400 Bad Request\r\n".
// Codes outside 100-599 are sent as 500. Safe from any goroutine; does not
// allocate when dst has room.
func AppendStatusLine(dst []byte, status int) []byte {
	if status < 100 || status >= 600 {
		status = 500
	}
	return append(dst, statusLines[status]...)
}

// ErrorPageBody returns nginx's built-in error page for status with
// "edgeproxy" (serverTokens false) or ServerVersion (true) where nginx
// writes its name, or nil for statuses nginx sends without a body. The
// result is shared and must not be modified. Safe from any goroutine.
func ErrorPageBody(status int, serverTokens bool) []byte {
	if status < 0 || status >= 600 {
		return nil
	}
	i := 0
	if serverTokens {
		i = 1
	}
	return errorPages[i][status]
}

// TimeFormat is the IMF-fixdate layout (RFC 9110 §5.6.7).
const TimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// AppendHTTPDate appends t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
// GMT"). It does not allocate when dst has room.
func AppendHTTPDate(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, TimeFormat)
}

var (
	dateValue atomic.Pointer[[]byte]
	dateOnce  sync.Once
)

// DateHeader returns the current Date header value (IMF-fixdate), updated
// once per second by a background goroutine started on first use. Safe
// from any goroutine; it does not allocate. The slice must not be
// modified; each second gets a new one, so an old slice stays valid.
func DateHeader() []byte {
	if p := dateValue.Load(); p != nil {
		return *p
	}
	dateOnce.Do(func() {
		storeDate(time.Now())
		go func() {
			for {
				now := time.Now()
				time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
				storeDate(time.Now())
			}
		}()
	})
	return *dateValue.Load()
}

func storeDate(t time.Time) {
	b := AppendHTTPDate(make([]byte, 0, len(TimeFormat)), t)
	dateValue.Store(&b)
}

package http1

import "errors"

// ErrNeedMore is returned by (*Request).Parse when the request head is not
// complete yet. The caller should read more bytes and call Parse again with
// the whole unconsumed input (the old bytes followed by the new ones).
var ErrNeedMore = errors.New("http1: need more data")

// Error is a request rejection. Status is the status code to put on the
// wire; Page is the status whose built-in error page to send (it differs
// from Status only for nginx's internal 494, which is sent as 400 with its
// own page text). Msg is for logs. All values are preallocated sentinels,
// so error paths never allocate; compare them with == or errors.Is.
type Error struct {
	Status int
	Page   int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func newErr(status int, msg string) *Error { return &Error{Status: status, Page: status, Msg: msg} }

// Sentinel errors. The messages mirror nginx's error_log wording.
var (
	ErrBadRequest      = newErr(400, "client sent invalid request")
	ErrInvalidMethod   = newErr(400, "client sent invalid method")
	ErrHTTP09          = newErr(400, "client sent HTTP/0.9 request")
	ErrInvalidHeader   = newErr(400, "client sent invalid header line")
	ErrBareCR          = newErr(400, "client sent bare CR")
	ErrNUL             = newErr(400, "client sent NUL byte")
	ErrInvalidPath     = newErr(400, "client sent invalid request URI")
	ErrInvalidHost     = newErr(400, "client sent invalid host")
	ErrNoHost          = newErr(400, "client sent HTTP/1.1 request without \"Host\" header")
	ErrDuplicateHeader = newErr(400, "client sent duplicate header line")
	ErrContentLength   = newErr(400, "client sent invalid \"Content-Length\" header")
	ErrCLAndTE         = newErr(400, "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time")
	ErrTEOnHTTP10      = newErr(400, "client sent HTTP/1.0 request with \"Transfer-Encoding\" header")
	ErrInvalidChunk    = newErr(400, "client sent invalid chunked body")

	ErrURITooLong = newErr(414, "client sent too long URI")
	// ErrHeaderTooLarge is nginx's NGX_HTTP_REQUEST_HEADER_TOO_LARGE (494):
	// sent as "400 Bad Request" with the "Request Header Or Cookie Too
	// Large" page. nginx never sends 431.
	ErrHeaderTooLarge   = &Error{Status: 400, Page: 494, Msg: "client sent too large request or too long header line"}
	ErrMethodNotAllowed = newErr(405, "client sent TRACE or CONNECT method")
	ErrNotImplemented   = newErr(501, "client sent unknown \"Transfer-Encoding\"")
	ErrVersion          = newErr(505, "client sent unsupported HTTP version")
)

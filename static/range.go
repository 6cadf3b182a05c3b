package static

import (
	"math"
	"strconv"
	"sync/atomic"
)

// Range is a byte range [Start, End) of a representation; End is
// exclusive, as in nginx's ngx_http_range_t. The last byte is End-1.
type Range struct {
	Start, End int64
}

// Len returns the number of bytes in the range.
func (r Range) Len() int64 { return r.End - r.Start }

// ParseRange evaluates a Range header value h for a representation of size
// bytes exactly like ngx_http_range_parse (ngx_http_range_filter_module.c)
// with nginx's default max_ranges (unlimited). The ranges found are appended
// to ranges[:0] and returned with a status:
//
//   - 200: ignore the header and send the whole representation. This is the
//     result for a value that is shorter than 7 bytes or does not start with
//     "bytes=" (case-insensitive), for an empty representation, when a range
//     starts at 0 but is empty, and when the ranges together are larger than
//     the representation (overlapping ranges, a DoS defence in nginx).
//   - 206: serve ranges; one range is a single part (Content-Range), several
//     are a multipart/byteranges body (see Multipart).
//   - 416: send "Content-Range: bytes */size" (AppendUnsatisfiedRange).
//     Unlike RFC 9110, nginx also answers 416 for a syntactically invalid
//     set (e.g. "bytes=x", "bytes=1-2-3", "bytes=--1") and for numbers that
//     overflow an off_t.
//
// Ranges are not sorted or coalesced; they are sent in request order, as
// nginx does. Spaces are allowed around numbers, '-' and ','. A NUL byte ends
// the value, as it would in nginx's NUL-terminated header. Does not
// allocate when ranges has enough capacity; safe from any goroutine.
func ParseRange(h []byte, size int64, ranges []Range) ([]Range, int) {
	return ParseRangeLimit(h, size, math.MaxInt32, ranges)
}

// ParseRangeLimit is ParseRange with the `max_ranges` directive: more than
// maxRanges ranges give 200 (whole response); maxRanges <= 0 disables
// ranges entirely (nginx's max_ranges 0).
func ParseRangeLimit(h []byte, size int64, maxRanges int, ranges []Range) ([]Range, int) {
	ranges = ranges[:0]
	if maxRanges <= 0 || len(h) < 7 || !hasBytesPrefix(h) {
		return ranges, 200
	}
	at := func(i int) byte {
		if i < len(h) {
			return h[i]
		}
		return 0
	}
	const cutoff = math.MaxInt64 / 10
	const cutlim = math.MaxInt64 % 10
	p := 6
	var total int64
	left := maxRanges
	for {
		var start, end int64
		suffix := false
		for at(p) == ' ' {
			p++
		}
		if at(p) != '-' {
			if c := at(p); c < '0' || c > '9' {
				return ranges[:0], 416
			}
			for c := at(p); c >= '0' && c <= '9'; c = at(p) {
				if start >= cutoff && (start > cutoff || int64(c-'0') > cutlim) {
					return ranges[:0], 416
				}
				start = start*10 + int64(c-'0')
				p++
			}
			for at(p) == ' ' {
				p++
			}
			if at(p) != '-' {
				return ranges[:0], 416
			}
			p++
			for at(p) == ' ' {
				p++
			}
			if c := at(p); c == ',' || c == 0 {
				end = size
				goto found
			}
		} else {
			suffix = true
			p++
		}
		if c := at(p); c < '0' || c > '9' {
			return ranges[:0], 416
		}
		for c := at(p); c >= '0' && c <= '9'; c = at(p) {
			if end >= cutoff && (end > cutoff || int64(c-'0') > cutlim) {
				return ranges[:0], 416
			}
			end = end*10 + int64(c-'0')
			p++
		}
		for at(p) == ' ' {
			p++
		}
		if c := at(p); c != ',' && c != 0 {
			return ranges[:0], 416
		}
		if suffix {
			if end < size {
				start = size - end
			} else {
				start = 0
			}
			end = size - 1
		}
		if end >= size {
			end = size
		} else {
			end++
		}
	found:
		if start < end {
			ranges = append(ranges, Range{start, end})
			if total > math.MaxInt64-(end-start) {
				return ranges[:0], 416
			}
			total += end - start
			if left == 0 {
				return ranges[:0], 200
			}
			left--
		} else if start == 0 {
			return ranges[:0], 200
		}
		c := at(p)
		p++
		if c != ',' {
			break
		}
	}
	if len(ranges) == 0 {
		return ranges, 416
	}
	if total > size {
		return ranges[:0], 200
	}
	return ranges, 206
}

func hasBytesPrefix(h []byte) bool {
	const s = "bytes="
	for i := 0; i < len(s); i++ {
		c := h[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// AppendContentRange appends the Content-Range value of a single-part 206
// response, "bytes START-LAST/SIZE" (ngx_http_range_singlepart_header).
func AppendContentRange(dst []byte, r Range, size int64) []byte {
	dst = append(dst, "bytes "...)
	dst = strconv.AppendInt(dst, r.Start, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, r.End-1, 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, size, 10)
}

// AppendUnsatisfiedRange appends the Content-Range value of a 416
// response, "bytes */SIZE" (ngx_http_range_not_satisfiable). nginx also
// drops Content-Length of the file and sends its 416 error page.
func AppendUnsatisfiedRange(dst []byte, size int64) []byte {
	dst = append(dst, "bytes */"...)
	return strconv.AppendInt(dst, size, 10)
}

var boundaryCounter atomic.Uint64

// NextBoundary returns a multipart boundary number the way nginx does
// (ngx_next_temp_number(0)): a process-wide counter starting at 1. Like
// nginx's it is predictable. Safe from any goroutine.
func NextBoundary() uint64 { return boundaryCounter.Add(1) }

// Multipart describes a multipart/byteranges body
// (ngx_http_range_multipart_header), byte-for-byte like nginx:
//
//	CRLF "--" BOUNDARY CRLF
//	"Content-Type: " TYPE CRLF            (omitted if TYPE is empty)
//	"Content-Range: bytes S-E/SIZE" CRLF CRLF
//	DATA                                   (repeated per range)
//	CRLF "--" BOUNDARY "--" CRLF
//
// BOUNDARY is the number zero-padded to 20 digits (nginx's "%0muA" with
// NGX_ATOMIC_T_LEN on 64-bit systems). The zero value is not meaningful;
// fill all fields. Methods do not allocate when dst has room.
type Multipart struct {
	Boundary uint64
	// ContentType is the part Content-Type, the full value nginx would
	// have sent for the whole file (including "; charset=..." if any).
	ContentType []byte
	Size        int64 // size of the whole representation
}

// AppendContentType appends the response Content-Type value,
// "multipart/byteranges; boundary=00000000000000000001".
func (m *Multipart) AppendContentType(dst []byte) []byte {
	dst = append(dst, "multipart/byteranges; boundary="...)
	return appendBoundary(dst, m.Boundary)
}

func appendBoundary(dst []byte, b uint64) []byte {
	var buf [20]byte
	for i := len(buf) - 1; i >= 0; i-- {
		buf[i] = byte('0' + b%10)
		b /= 10
	}
	return append(dst, buf[:]...)
}

// AppendPartHeader appends the delimiter and headers that precede the data
// of range r.
func (m *Multipart) AppendPartHeader(dst []byte, r Range) []byte {
	dst = append(dst, "\r\n--"...)
	dst = appendBoundary(dst, m.Boundary)
	dst = append(dst, "\r\n"...)
	if len(m.ContentType) > 0 {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, m.ContentType...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Range: "...)
	dst = AppendContentRange(dst, r, m.Size)
	return append(dst, "\r\n\r\n"...)
}

// AppendTrailer appends the closing delimiter.
func (m *Multipart) AppendTrailer(dst []byte) []byte {
	dst = append(dst, "\r\n--"...)
	dst = appendBoundary(dst, m.Boundary)
	return append(dst, "--\r\n"...)
}

// ContentLength returns the Content-Length of the whole multipart body for
// ranges.
func (m *Multipart) ContentLength(ranges []Range) int64 {
	// Computed arithmetically (not by formatting) so that a long
	// ContentType never needs a scratch allocation.
	const delim = len("\r\n--") + 20 + len("\r\n")
	n := int64(len("\r\n--") + 20 + len("--\r\n")) // trailer
	hdr := int64(delim+len("Content-Range: bytes -/\r\n\r\n")) + digits(m.Size)
	if len(m.ContentType) > 0 {
		hdr += int64(len("Content-Type: \r\n") + len(m.ContentType))
	}
	for _, r := range ranges {
		n += hdr + digits(r.Start) + digits(r.End-1) + r.Len()
	}
	return n
}

func digits(v int64) int64 {
	n := int64(1)
	if v < 0 {
		n++
		v = -v
	}
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

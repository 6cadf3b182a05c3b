package http1

// ChunkedDecoder decodes a chunked request body (RFC 9112 §7.1) like
// nginx's ngx_http_parse_chunked, without copying: data is returned as
// subslices of the input. Chunk extensions and trailer fields are skipped.
// Framing must use CRLF: unlike nginx 1.22 (newer nginx agrees with us) a
// bare LF is an error, because LF-only chunk lines are a known request
// smuggling vector between parsers that disagree. The zero value is ready
// to decode a new body; a decoder is used by one goroutine at a time.
type ChunkedDecoder struct {
	state uint8
	size  int64 // bytes left in the current chunk (or the size being read)
	err   *Error
}

const (
	cStart uint8 = iota
	cSize
	cExt
	cExtLF
	cData
	cAfterData
	cAfterDataLF
	cLastExt
	cLastExtLF
	cTrailer
	cTrailerLF
	cTrailerLine
	cTrailerLineLF
	cDone
)

// Reset prepares d for a new body.
func (d *ChunkedDecoder) Reset() { *d = ChunkedDecoder{} }

// Remaining returns the bytes left in the current chunk's data.
func (d *ChunkedDecoder) Remaining() int64 {
	if d.state == cData {
		return d.size
	}
	return 0
}

// Decode consumes framing from in and returns at most one run of body
// bytes. consumed is how many bytes of in were used (framing and data);
// the caller drops them and calls Decode again with the rest plus any new
// input. data aliases in. done is true once the last chunk and the
// trailer section have been consumed; bytes after them belong to the next
// request. err (always ErrInvalidChunk, status 400) is sticky. With no
// error, consumed == len(in) or data != nil or done.
func (d *ChunkedDecoder) Decode(in []byte) (consumed int, data []byte, done bool, err error) {
	if d.err != nil {
		return 0, nil, false, d.err
	}
	if d.state == cDone {
		return 0, nil, true, nil
	}
	i := 0
	for i < len(in) {
		if d.state == cData {
			n := len(in) - i
			if int64(n) > d.size {
				n = int(d.size)
			}
			d.size -= int64(n)
			if d.size == 0 {
				d.state = cAfterData
			}
			return i + n, in[i : i+n : i+n], false, nil
		}
		c := in[i]
		i++
		switch d.state {
		case cStart:
			h, ok := unhex(c)
			if !ok {
				return d.fail()
			}
			d.size = int64(h)
			d.state = cSize
		case cSize:
			// nginx: refuse before a digit could overflow off_t.
			if d.size > (1<<63-1)/16 {
				return d.fail()
			}
			if h, ok := unhex(c); ok {
				d.size = d.size<<4 | int64(h)
				continue
			}
			switch c {
			case '\r':
				d.state = cExtLF
			case ';', ' ', '\t':
				// chunk-ext, with BWS before ';' (RFC 9112 §7.1.1)
				d.state = cExt
			default:
				return d.fail()
			}
			if d.size == 0 {
				if d.state == cExt {
					d.state = cLastExt
				} else {
					d.state = cLastExtLF
				}
			}
		case cExt, cLastExt:
			switch c {
			case '\r':
				d.state++ // cExtLF / cLastExtLF
			case '\n', 0:
				return d.fail()
			}
		case cExtLF:
			if c != '\n' {
				return d.fail()
			}
			d.state = cData
		case cAfterData:
			if c != '\r' {
				return d.fail()
			}
			d.state = cAfterDataLF
		case cAfterDataLF:
			if c != '\n' {
				return d.fail()
			}
			d.state = cStart
		case cLastExtLF:
			if c != '\n' {
				return d.fail()
			}
			d.state = cTrailer
		case cTrailer:
			switch c {
			case '\r':
				d.state = cTrailerLF
			case '\n', 0:
				return d.fail()
			default:
				d.state = cTrailerLine
			}
		case cTrailerLF:
			if c != '\n' {
				return d.fail()
			}
			d.state = cDone
			return i, nil, true, nil
		case cTrailerLine:
			switch c {
			case '\r':
				d.state = cTrailerLineLF
			case '\n', 0:
				return d.fail()
			}
		case cTrailerLineLF:
			if c != '\n' {
				return d.fail()
			}
			d.state = cTrailer
		}
	}
	return i, nil, false, nil
}

func (d *ChunkedDecoder) fail() (int, []byte, bool, error) {
	d.err = ErrInvalidChunk
	return 0, nil, false, d.err
}

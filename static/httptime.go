package static

import "time"

// AppendHTTPTime appends t (Unix seconds) as an IMF-fixdate, e.g.
// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 section 5.6.7), the format of
// nginx's ngx_http_time. Does not allocate if dst has room for 29 bytes.
func AppendHTTPTime(dst []byte, t int64) []byte {
	return time.Unix(t, 0).UTC().AppendFormat(dst, "Mon, 02 Jan 2006 15:04:05 GMT")
}

var mday = [12]int64{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// ParseHTTPTime parses an HTTP date exactly like nginx's
// ngx_parse_http_time (src/core/ngx_parse_time.c): it accepts RFC 1123
// ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37
// GMT") and asctime ("Sun Nov  6 08:49:37 1994"), ignores anything after
// the seconds (the zone is not checked) and returns -1 on error. Note that,
// as in nginx, "Wed, 31 Dec 1969 23:59:59 GMT" is indistinguishable from an
// error. Does not allocate; safe from any goroutine.
func ParseHTTPTime(v []byte) int64 {
	// at emulates nginx's NUL-terminated header values: reading at or past
	// the end yields 0, which no branch below accepts.
	at := func(i int) byte {
		if i < len(v) {
			return v[i]
		}
		return 0
	}
	isDigit := func(i int) bool { c := at(i); return c >= '0' && c <= '9' }
	d := func(i int) int64 { return int64(at(i) - '0') }

	const (
		rfc822 = iota + 1
		rfc850
		isoc
	)
	fmt := 0
	end := len(v)
	p := 0
	for ; p < end; p++ {
		if v[p] == ',' {
			break
		}
		if v[p] == ' ' {
			fmt = isoc
			break
		}
	}
	for p++; p < end; p++ {
		if v[p] != ' ' {
			break
		}
	}
	if end-p < 18 {
		return -1
	}
	var day, year, month int64
	if fmt != isoc {
		if !isDigit(p) || !isDigit(p+1) {
			return -1
		}
		day = d(p)*10 + d(p+1)
		p += 2
		switch at(p) {
		case ' ':
			if end-p < 18 {
				return -1
			}
			fmt = rfc822
		case '-':
			fmt = rfc850
		default:
			return -1
		}
		p++
	}
	switch at(p) {
	case 'J':
		if at(p+1) == 'a' {
			month = 0
		} else if at(p+2) == 'n' {
			month = 5
		} else {
			month = 6
		}
	case 'F':
		month = 1
	case 'M':
		if at(p+2) == 'r' {
			month = 2
		} else {
			month = 4
		}
	case 'A':
		if at(p+1) == 'p' {
			month = 3
		} else {
			month = 7
		}
	case 'S':
		month = 8
	case 'O':
		month = 9
	case 'N':
		month = 10
	case 'D':
		month = 11
	default:
		return -1
	}
	p += 3
	if (fmt == rfc822 && at(p) != ' ') || (fmt == rfc850 && at(p) != '-') {
		return -1
	}
	p++
	switch fmt {
	case rfc822:
		if !isDigit(p) || !isDigit(p+1) || !isDigit(p+2) || !isDigit(p+3) {
			return -1
		}
		year = d(p)*1000 + d(p+1)*100 + d(p+2)*10 + d(p+3)
		p += 4
	case rfc850:
		if !isDigit(p) || !isDigit(p+1) {
			return -1
		}
		year = d(p)*10 + d(p+1)
		if year < 70 {
			year += 2000
		} else {
			year += 1900
		}
		p += 2
	case isoc:
		if at(p) == ' ' {
			p++
		}
		if !isDigit(p) {
			return -1
		}
		day = d(p)
		p++
		if at(p) != ' ' {
			if !isDigit(p) {
				return -1
			}
			day = day*10 + d(p)
			p++
		}
		if end-p < 14 {
			return -1
		}
	}
	if at(p) != ' ' {
		return -1
	}
	p++
	if !isDigit(p) || !isDigit(p+1) {
		return -1
	}
	hour := d(p)*10 + d(p+1)
	p += 2
	if at(p) != ':' {
		return -1
	}
	p++
	if !isDigit(p) || !isDigit(p+1) {
		return -1
	}
	min := d(p)*10 + d(p+1)
	p += 2
	if at(p) != ':' {
		return -1
	}
	p++
	if !isDigit(p) || !isDigit(p+1) {
		return -1
	}
	sec := d(p)*10 + d(p+1)
	if fmt == isoc {
		p += 2
		if at(p) != ' ' {
			return -1
		}
		p++
		if !isDigit(p) || !isDigit(p+1) || !isDigit(p+2) || !isDigit(p+3) {
			return -1
		}
		year = d(p)*1000 + d(p+1)*100 + d(p+2)*10 + d(p+3)
	}
	if hour > 23 || min > 59 || sec > 59 {
		return -1
	}
	if day == 29 && month == 1 {
		if year&3 != 0 || (year%100 == 0 && year%400 != 0) {
			return -1
		}
	} else if day > mday[month] {
		return -1
	}
	// Shift the new year to March 1 and count months from 1 for Gauss'
	// formula, as nginx does.
	month--
	if month <= 0 {
		month += 12
		year--
	}
	days := 365*year + year/4 - year/100 + year/400 + 367*month/12 - 30 + day - 1 - 719527 + 31 + 28
	return days*86400 + hour*3600 + min*60 + sec
}

package config

import (
	"errors"
	"math"
	"strings"
	"time"
)

// ErrInvalidValue is returned by the Parse* helpers. nginx's slot handlers
// turn the same failure into `"NAME" directive invalid value`.
var ErrInvalidValue = errors.New("invalid value")

// atoi is ngx_atosz/ngx_atoof: decimal digits only, no sign, no spaces,
// overflow of int64 is an error.
func atoi(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// ParseSize parses a size like nginx's ngx_parse_size (used by
// ngx_conf_set_size_slot: client_header_buffer_size, client_body_buffer_size,
// ...): decimal digits with an optional k/K (×1024) or m/M (×1024²) suffix.
// nginx's size slot does not accept a g suffix; use ParseOffset for the
// directives nginx parses with ngx_parse_offset (client_max_body_size).
func ParseSize(s string) (int64, error) {
	return parseScaled(s, false)
}

// ParseOffset parses a size like nginx's ngx_parse_offset (used by
// ngx_conf_set_off_slot, e.g. client_max_body_size): like ParseSize plus a
// g/G (×1024³) suffix.
func ParseOffset(s string) (int64, error) {
	return parseScaled(s, true)
}

func parseScaled(s string, allowG bool) (int64, error) {
	if s == "" {
		return 0, ErrInvalidValue
	}
	scale := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		scale = 1 << 10
	case 'm', 'M':
		scale = 1 << 20
	case 'g', 'G':
		if allowG {
			scale = 1 << 30
		}
	}
	if scale != 1 {
		s = s[:len(s)-1]
	}
	v, ok := atoi(s)
	if !ok || v > math.MaxInt64/scale {
		return 0, ErrInvalidValue
	}
	return v * scale, nil
}

// ParseTime parses a time like nginx's ngx_parse_time(s, 0), the parser of
// ngx_conf_set_msec_slot (keepalive_timeout, send_timeout, ...): a sequence
// of NUMBER[UNIT] with units in decreasing order among w d h m s ms, e.g.
// "1h30m" or "500ms"; a number without unit is seconds. As in nginx, the
// y and M units are not accepted in this (milliseconds) mode.
func ParseTime(s string) (time.Duration, error) {
	ms, err := parseTime(s, false)
	if err != nil {
		return 0, err
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return 0, ErrInvalidValue
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// ParseSeconds parses a time like nginx's ngx_parse_time(s, 1), the parser
// of ngx_conf_set_sec_slot and of "expires": units y M w d h m s (a year is
// 365 days, a month 30 days), "ms" is rejected.
func ParseSeconds(s string) (time.Duration, error) {
	sec, err := parseTime(s, true)
	if err != nil {
		return 0, err
	}
	if sec > math.MaxInt64/int64(time.Second) {
		return 0, ErrInvalidValue
	}
	return time.Duration(sec) * time.Second, nil
}

// parseTime is a port of ngx_parse_time (src/core/ngx_parse.c); it returns
// milliseconds (isSec false) or seconds (isSec true).
func parseTime(s string, isSec bool) (int64, error) {
	const (
		stStart = iota
		stYear
		stMonth
		stWeek
		stDay
		stHour
		stMin
		stSec
		stMsec
		stLast
	)
	const maxInt = math.MaxInt64
	var value, total int64
	valid := false
	step := stStart
	if !isSec {
		step = stMonth
	}
	for p := 0; p < len(s); {
		c := s[p]
		if c >= '0' && c <= '9' {
			if value >= maxInt/10 && (value > maxInt/10 || int64(c-'0') > maxInt%10) {
				return 0, ErrInvalidValue
			}
			value = value*10 + int64(c-'0')
			p++
			valid = true
			continue
		}
		p++
		var max, scale int64
		switch c {
		case 'y':
			if step > stStart {
				return 0, ErrInvalidValue
			}
			step, max, scale = stYear, maxInt/(60*60*24*365), 60*60*24*365
		case 'M':
			if step >= stMonth {
				return 0, ErrInvalidValue
			}
			step, max, scale = stMonth, maxInt/(60*60*24*30), 60*60*24*30
		case 'w':
			if step >= stWeek {
				return 0, ErrInvalidValue
			}
			step, max, scale = stWeek, maxInt/(60*60*24*7), 60*60*24*7
		case 'd':
			if step >= stDay {
				return 0, ErrInvalidValue
			}
			step, max, scale = stDay, maxInt/(60*60*24), 60*60*24
		case 'h':
			if step >= stHour {
				return 0, ErrInvalidValue
			}
			step, max, scale = stHour, maxInt/(60*60), 60*60
		case 'm':
			if p < len(s) && s[p] == 's' {
				if isSec || step >= stMsec {
					return 0, ErrInvalidValue
				}
				p++
				step, max, scale = stMsec, maxInt, 1
				break
			}
			if step >= stMin {
				return 0, ErrInvalidValue
			}
			step, max, scale = stMin, maxInt/60, 60
		case 's':
			if step >= stSec {
				return 0, ErrInvalidValue
			}
			step, max, scale = stSec, maxInt, 1
		case ' ':
			if step >= stSec {
				return 0, ErrInvalidValue
			}
			step, max, scale = stLast, maxInt, 1
		default:
			return 0, ErrInvalidValue
		}
		if step != stMsec && !isSec {
			scale *= 1000
			max /= 1000
		}
		if value > max {
			return 0, ErrInvalidValue
		}
		value *= scale
		if total > maxInt-value {
			return 0, ErrInvalidValue
		}
		total += value
		value = 0
		for p < len(s) && s[p] == ' ' {
			p++
		}
	}
	if !valid {
		return 0, ErrInvalidValue
	}
	if !isSec {
		if value > maxInt/1000 {
			return 0, ErrInvalidValue
		}
		value *= 1000
	}
	if total > maxInt-value {
		return 0, ErrInvalidValue
	}
	return total + value, nil
}

// ParseFlag parses an nginx FLAG value like ngx_conf_set_flag_slot: "on" or
// "off", case-insensitively. The error text is the tail of nginx's message
// (`invalid value "x" in "NAME" directive, it must be "on" or "off"`).
func ParseFlag(s string) (bool, error) {
	switch {
	case strings.EqualFold(s, "on"):
		return true, nil
	case strings.EqualFold(s, "off"):
		return false, nil
	}
	return false, errors.New(`it must be "on" or "off"`)
}

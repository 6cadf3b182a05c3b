package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in     string
		size   int64 // ngx_parse_size
		offset int64 // ngx_parse_offset
	}{
		{"0", 0, 0}, {"512", 512, 512}, {"8k", 8 << 10, 8 << 10}, {"8K", 8 << 10, 8 << 10},
		{"1m", 1 << 20, 1 << 20}, {"10M", 10 << 20, 10 << 20},
		{"1g", -1, 1 << 30}, {"2G", -1, 2 << 30},
		{"", -1, -1}, {"k", -1, -1}, {"-1", -1, -1}, {"1.5m", -1, -1}, {" 1", -1, -1},
		{"1kb", -1, -1}, {"9223372036854775807", 9223372036854775807, 9223372036854775807},
		{"9223372036854775808", -1, -1}, {"9007199254740992k", -1, -1},
	} {
		got, err := ParseSize(tt.in)
		if (err != nil) != (tt.size < 0) || (err == nil && got != tt.size) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.size)
		}
		got, err = ParseOffset(tt.in)
		if (err != nil) != (tt.offset < 0) || (err == nil && got != tt.offset) {
			t.Errorf("ParseOffset(%q) = %d, %v; want %d", tt.in, got, err, tt.offset)
		}
	}
}

func TestParseTime(t *testing.T) {
	const bad = time.Duration(-1)
	day := 24 * time.Hour
	for _, tt := range []struct {
		in   string
		msec time.Duration // ngx_parse_time(s, 0)
		sec  time.Duration // ngx_parse_time(s, 1)
	}{
		{"65", 65 * time.Second, 65 * time.Second},
		{"0", 0, 0},
		{"500ms", 500 * time.Millisecond, bad},
		{"1h30m", 90 * time.Minute, 90 * time.Minute},
		{"1h 30m", 90 * time.Minute, 90 * time.Minute},
		{"1d2h3m4s5ms", day + 2*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond, bad},
		{"2w", 14 * day, 14 * day},
		{"1M", bad, 30 * day},
		{"1y", bad, 365 * day},
		{"1y2M", bad, 365*day + 60*day},
		{"30m1h", bad, bad}, // units must decrease
		{"1s1s", bad, bad},
		{"s", bad, bad},
		{"", bad, bad},
		{"1x", bad, bad},
		{"-1", bad, bad},
		{"10 ", 10 * time.Second, 10 * time.Second},
		{"1m 5", 65 * time.Second, 65 * time.Second},
		{"99999999999999999999", bad, bad},
	} {
		got, err := ParseTime(tt.in)
		if (err != nil) != (tt.msec == bad) || (err == nil && got != tt.msec) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.msec)
		}
		got, err = ParseSeconds(tt.in)
		if (err != nil) != (tt.sec == bad) || (err == nil && got != tt.sec) {
			t.Errorf("ParseSeconds(%q) = %v, %v; want %v", tt.in, got, err, tt.sec)
		}
	}
}

func TestParseFlag(t *testing.T) {
	for in, want := range map[string]bool{"on": true, "ON": true, "Off": false, "off": false} {
		got, err := ParseFlag(in)
		if err != nil || got != want {
			t.Errorf("ParseFlag(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "yes", "1", "true", "onn"} {
		if _, err := ParseFlag(in); err == nil || err.Error() != `it must be "on" or "off"` {
			t.Errorf("ParseFlag(%q) err = %v", in, err)
		}
	}
}

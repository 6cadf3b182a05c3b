package cachestore

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"edgeproxy/config"
)

// Defaults of proxy_cache_path, as ngx_http_file_cache_set_slot sets them,
// and edgeproxy's memory defaults.
const (
	DefaultInactive = 10 * time.Minute // inactive=, nginx's 600 s
	// DefaultMaxBytesFactor: without max_size=, entries may use this many
	// times the keys_zone size of memory (keys_zone=10m → 80 MiB).
	DefaultMaxBytesFactor = 8
	// DefaultMemoryCap bounds MaxBytes when max_size= is larger: a
	// max_size written for a disk cache (max_size=10g) must not become
	// 10 GiB of heap. Callers may raise ZoneSpec.MaxBytes after ParsePath.
	DefaultMemoryCap = 1 << 30
	// bytesPerKey is nginx's keys_zone density (the docs: "one megabyte
	// zone can store about 8 thousand keys").
	bytesPerKey = 128
	// minKeysZone is 2 * ngx_pagesize, below which nginx says "keys zone
	// is too small".
	minKeysZone = 2 * 4096
)

// ZoneSpec is a parsed proxy_cache_path. The zero value is not a valid
// zone (it has no keys_zone); NewZone rejects it.
//
// edgeproxy keeps entries in memory, not on disk: Path, Levels,
// UseTempPath, MinFree and the loader/manager parameters are validated as
// nginx does and recorded but have no effect. The memory a zone may use for
// entries (bodies, heads, keys, bookkeeping) is MaxBytes: max_size= when
// given (capped at DefaultMemoryCap), else DefaultMaxBytesFactor × the
// keys_zone size. The keys_zone size bounds the number of entries like
// nginx's shared zone does (about 8000 per MiB). Inactive evicts entries not
// hit for that long, as nginx's cache manager does.
type ZoneSpec struct {
	Path         string
	Name         string // keys_zone name, what proxy_cache refers to
	KeysZoneSize int64  // bytes
	MaxSize      int64  // max_size= as written; 0 when absent
	MaxBytes     int64  // memory bound actually applied (see above)
	Inactive     time.Duration
	Levels       []int
	UseTempPath  bool // default on, as nginx
	MinFree      int64

	LoaderFiles, ManagerFiles      int64
	LoaderSleep, LoaderThreshold   time.Duration
	ManagerSleep, ManagerThreshold time.Duration
}

// MaxEntries is the number of entries the keys_zone size allows.
func (s *ZoneSpec) MaxEntries() int64 {
	return max(64, s.KeysZoneSize/bytesPerKey)
}

// ParsePath parses the arguments of proxy_cache_path (the words after the
// directive name) like ngx_http_file_cache_set_slot in nginx 1.22, with its
// error wording (the caller adds " in FILE:LINE"). Any goroutine may call
// it.
func ParsePath(args []string) (ZoneSpec, error) {
	s := ZoneSpec{
		Inactive:         DefaultInactive,
		UseTempPath:      true,
		LoaderFiles:      100,
		LoaderSleep:      50 * time.Millisecond,
		LoaderThreshold:  200 * time.Millisecond,
		ManagerFiles:     100,
		ManagerSleep:     50 * time.Millisecond,
		ManagerThreshold: 200 * time.Millisecond,
	}
	if len(args) < 2 {
		return ZoneSpec{}, errors.New(`invalid number of arguments in "proxy_cache_path" directive`)
	}
	s.Path = args[0]
	for _, a := range args[1:] {
		key, val, _ := strings.Cut(a, "=")
		if !strings.Contains(a, "=") {
			return ZoneSpec{}, errors.New(`invalid parameter "` + a + `"`)
		}
		var err error
		switch key {
		case "levels":
			s.Levels, err = parseLevels(a, val)
		case "use_temp_path":
			switch val {
			case "on":
				s.UseTempPath = true
			case "off":
				s.UseTempPath = false
			default:
				err = errors.New(`invalid use_temp_path value "` + a + `", it must be "on" or "off"`)
			}
		case "keys_zone":
			name, size, ok := strings.Cut(val, ":")
			if !ok {
				return ZoneSpec{}, errors.New(`invalid keys zone size "` + a + `"`)
			}
			n, e := config.ParseSize(size)
			if e != nil {
				return ZoneSpec{}, errors.New(`invalid keys zone size "` + a + `"`)
			}
			if n < minKeysZone {
				return ZoneSpec{}, errors.New(`keys zone "` + a + `" is too small`)
			}
			s.Name, s.KeysZoneSize = name, n
		case "inactive":
			s.Inactive, err = config.ParseSeconds(val)
		case "max_size":
			s.MaxSize, err = config.ParseOffset(val)
		case "min_free":
			s.MinFree, err = config.ParseOffset(val)
		case "loader_files":
			s.LoaderFiles, err = parseCount(val)
		case "loader_sleep":
			s.LoaderSleep, err = config.ParseTime(val)
		case "loader_threshold":
			s.LoaderThreshold, err = config.ParseTime(val)
		case "manager_files":
			s.ManagerFiles, err = parseCount(val)
		case "manager_sleep":
			s.ManagerSleep, err = config.ParseTime(val)
		case "manager_threshold":
			s.ManagerThreshold, err = config.ParseTime(val)
		default:
			// purger= and friends are nginx Plus; OSS rejects them too.
			return ZoneSpec{}, errors.New(`invalid parameter "` + a + `"`)
		}
		if err != nil {
			if key == "levels" || key == "use_temp_path" {
				return ZoneSpec{}, err
			}
			return ZoneSpec{}, errors.New(`invalid ` + key + ` value "` + a + `"`)
		}
	}
	if s.Name == "" || s.KeysZoneSize == 0 {
		return ZoneSpec{}, errors.New(`"proxy_cache_path" must have "keys_zone" parameter`)
	}
	switch {
	case s.MaxSize > 0:
		s.MaxBytes = min(s.MaxSize, DefaultMemoryCap)
	default:
		s.MaxBytes = min(s.KeysZoneSize*DefaultMaxBytesFactor, DefaultMemoryCap)
	}
	return s, nil
}

// parseLevels mirrors the levels= loop of ngx_http_file_cache_set_slot:
// one to three levels of 1 or 2 characters, separated by ':'.
func parseLevels(arg, v string) ([]int, error) {
	bad := errors.New(`invalid "levels" "` + arg + `"`)
	var lv []int
	for p := 0; p < len(v); {
		if len(lv) == 3 || (v[p] != '1' && v[p] != '2') {
			return nil, bad
		}
		lv = append(lv, int(v[p]-'0'))
		p++
		if p == len(v) {
			break
		}
		if v[p] != ':' || p+1 == len(v) {
			return nil, bad
		}
		p++
	}
	return lv, nil
}

func parseCount(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || v[0] == '+' {
		return 0, config.ErrInvalidValue
	}
	return n, nil
}

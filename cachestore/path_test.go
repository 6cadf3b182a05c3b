package cachestore

import (
	"strings"
	"testing"
	"time"
)

func TestParsePath(t *testing.T) {
	s, err := ParsePath(strings.Fields("/var/cache/nginx levels=1:2 keys_zone=app:10m max_size=64m inactive=60m use_temp_path=off min_free=1g loader_files=200 loader_sleep=100ms manager_threshold=1s"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Path != "/var/cache/nginx" || s.Name != "app" || s.KeysZoneSize != 10<<20 || s.MaxSize != 64<<20 ||
		s.MaxBytes != 64<<20 || s.Inactive != time.Hour || s.UseTempPath || len(s.Levels) != 2 ||
		s.LoaderFiles != 200 || s.LoaderSleep != 100*time.Millisecond || s.ManagerThreshold != time.Second {
		t.Fatalf("%+v", s)
	}
	if s.MaxEntries() != 81920 {
		t.Fatalf("MaxEntries %d", s.MaxEntries())
	}
	// Defaults: inactive 10m as nginx; memory keys_zone × 8; a disk-sized
	// max_size is capped.
	s, err = ParsePath([]string{"/c", "keys_zone=z:1m"})
	if err != nil || s.Inactive != 10*time.Minute || s.MaxBytes != 8<<20 || !s.UseTempPath {
		t.Fatalf("%+v %v", s, err)
	}
	s, _ = ParsePath([]string{"/c", "keys_zone=z:1m", "max_size=10g"})
	if s.MaxSize != 10<<30 || s.MaxBytes != DefaultMemoryCap {
		t.Fatalf("%+v", s)
	}

	bad := map[string]string{
		"/c":                                  `invalid number of arguments in "proxy_cache_path" directive`,
		"/c levels=1:2":                       `"proxy_cache_path" must have "keys_zone" parameter`,
		"/c keys_zone=z":                      `invalid keys zone size "keys_zone=z"`,
		"/c keys_zone=z:10x":                  `invalid keys zone size "keys_zone=z:10x"`,
		"/c keys_zone=z:4k":                   `keys zone "keys_zone=z:4k" is too small`,
		"/c keys_zone=z:1m levels=3":          `invalid "levels" "levels=3"`,
		"/c keys_zone=z:1m levels=1:2:2:1":    `invalid "levels" "levels=1:2:2:1"`,
		"/c keys_zone=z:1m levels=1:":         `invalid "levels" "levels=1:"`,
		"/c keys_zone=z:1m inactive=5q":       `invalid inactive value "inactive=5q"`,
		"/c keys_zone=z:1m max_size=-1":       `invalid max_size value "max_size=-1"`,
		"/c keys_zone=z:1m use_temp_path=yes": `invalid use_temp_path value "use_temp_path=yes", it must be "on" or "off"`,
		"/c keys_zone=z:1m purger=on":         `invalid parameter "purger=on"`,
		"/c keys_zone=z:1m bogus":             `invalid parameter "bogus"`,
	}
	for in, want := range bad {
		if _, err := ParsePath(strings.Fields(in)); err == nil || err.Error() != want {
			t.Errorf("%q: err %v, want %q", in, err, want)
		}
	}
}

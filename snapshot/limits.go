package snapshot

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"edgeproxy/config"
	"edgeproxy/limiter"
)

// ReqZone is a compiled limit_req_zone: the shared zone and its key.
type ReqZone struct {
	Zone *limiter.ReqZone
	Key  Template
}

// ConnZone is a compiled limit_conn_zone.
type ConnZone struct {
	Zone *limiter.ConnZone
	Key  Template
}

// Limits are a location's limit_req and limit_conn settings. A level that
// has any limit_req replaces all inherited ones (nginx's array merge), and
// likewise for limit_conn.
type Limits struct {
	Req         []limiter.ReqLimit
	ReqKeys     []*Template // parallel to Req
	ReqStatus   int
	ReqDryRun   bool
	ReqLogLevel int // limit_req_log_level (rejections; delays log one level lower)

	Conn       []ConnLimit
	ConnStatus int
	ConnDryRun bool
}

// ConnLimit is one `limit_conn zone N`.
type ConnLimit struct {
	Zone *limiter.ConnZone
	Key  *Template
	N    int
}

// zoneSpec parses "zone=NAME:SIZE" (ngx_http_limit_req_zone).
func zoneSpec(d *config.Directive, a string) (string, int64, error) {
	v := strings.TrimPrefix(a, "zone=")
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return "", 0, errAt(d, "invalid zone size %q", a)
	}
	size, err := config.ParseSize(v[i+1:])
	if err != nil || size < 8192 {
		if err == nil {
			return "", 0, errAt(d, "zone %q is too small", a)
		}
		return "", 0, errAt(d, "invalid zone size %q", a)
	}
	return v[:i], size, nil
}

// limitZones compiles the http-level limit_req_zone and limit_conn_zone
// directives before anything refers to them (nginx resolves zone names at
// the end of the configuration, so order does not matter).
func (c *compiler) limitZones(ds []*config.Directive) error {
	c.reqZones = map[string]*ReqZone{}
	c.connZones = map[string]*ConnZone{}
	for _, d := range ds {
		switch d.Name {
		case "limit_req_zone":
			var name, rate, redisAddr string
			var size int64
			var interval time.Duration
			for _, a := range d.Args[1:] {
				switch {
				case strings.HasPrefix(a, "redis="):
					// edgeproxy extension: fleet-wide limits (package fleet).
					redisAddr = a[6:]
					if _, _, err := net.SplitHostPort(redisAddr); err != nil {
						return errAt(d, "invalid redis address %q", a)
					}
				case strings.HasPrefix(a, "sync="):
					var err error
					if interval, err = config.ParseTime(a[5:]); err != nil || interval <= 0 {
						return errAt(d, "invalid sync interval %q", a)
					}
				case strings.HasPrefix(a, "zone="):
					var err error
					if name, size, err = zoneSpec(d, a); err != nil {
						return err
					}
				case strings.HasPrefix(a, "rate="):
					rate = a[5:]
				default:
					return errAt(d, "invalid parameter %q", a)
				}
			}
			if name == "" {
				return errAt(d, "\"limit_req_zone\" must have \"zone\" parameter")
			}
			r, err := limiter.ParseRate(rate)
			if err != nil || rate == "" {
				return errAt(d, "invalid rate %q", rate)
			}
			key, err := c.tmpl(d, d.Args[0])
			if err != nil {
				return err
			}
			if _, dup := c.reqZones[name]; dup {
				return errAt(d, "duplicate zone %q", name)
			}
			if interval != 0 && redisAddr == "" {
				return errAt(d, "\"sync=\" needs \"redis=\"")
			}
			z := shared.reqZone(name, size, r)
			if redisAddr != "" {
				shared.fleet(z, redisAddr, interval)
			}
			c.reqZones[name] = &ReqZone{Zone: z, Key: key}
		case "limit_conn_zone":
			a := d.Args[1]
			if !strings.HasPrefix(a, "zone=") {
				return errAt(d, "invalid parameter %q", a)
			}
			name, size, err := zoneSpec(d, a)
			if err != nil {
				return err
			}
			var redisAddr string
			var interval time.Duration
			for _, a := range d.Args[2:] {
				switch {
				case strings.HasPrefix(a, "redis="):
					// edgeproxy extension: fleet-wide limits (package fleet).
					redisAddr = a[6:]
					if _, _, err := net.SplitHostPort(redisAddr); err != nil {
						return errAt(d, "invalid redis address %q", a)
					}
				case strings.HasPrefix(a, "sync="):
					if interval, err = config.ParseTime(a[5:]); err != nil || interval <= 0 {
						return errAt(d, "invalid sync interval %q", a)
					}
				default:
					return errAt(d, "invalid parameter %q", a)
				}
			}
			if interval != 0 && redisAddr == "" {
				return errAt(d, "\"sync=\" needs \"redis=\"")
			}
			key, err := c.tmpl(d, d.Args[0])
			if err != nil {
				return err
			}
			if _, dup := c.connZones[name]; dup {
				return errAt(d, "duplicate zone %q", name)
			}
			z := shared.connZone(name, size)
			if redisAddr != "" {
				shared.connFleet(z, redisAddr, interval)
			}
			c.connZones[name] = &ConnZone{Zone: z, Key: key}
		}
	}
	return nil
}

// limitDirective applies one limit_* directive to loc. first reports
// whether it is the level's first limit_req / limit_conn (the level then
// replaces the inherited list).
func (c *compiler) limitDirective(d *config.Directive, loc *Location, firstReq, firstConn *bool) error {
	l := &loc.Limits
	switch d.Name {
	case "limit_req_zone", "limit_conn_zone":
		return nil // compiled by limitZones
	case "limit_req":
		if *firstReq {
			l.Req, l.ReqKeys = nil, nil
			*firstReq = false
		}
		var rl limiter.ReqLimit
		var zone *ReqZone
		delaySet := false
		for _, a := range d.Args {
			switch {
			case strings.HasPrefix(a, "zone="):
				z, ok := c.reqZones[a[5:]]
				if !ok {
					return errAt(d, "zero size shared memory zone %q", a[5:])
				}
				zone = z
			case strings.HasPrefix(a, "burst="):
				n, err := strconv.ParseInt(a[6:], 10, 64)
				if err != nil || n <= 0 {
					return errAt(d, "invalid burst value %q", a)
				}
				rl.Burst = n
			case strings.HasPrefix(a, "delay="):
				n, err := strconv.ParseInt(a[6:], 10, 64)
				if err != nil || n <= 0 {
					return errAt(d, "invalid delay value %q", a)
				}
				rl.Delay, delaySet = n, true
			case a == "nodelay":
				rl.Delay, delaySet = limiter.NoDelay, true
			default:
				return errAt(d, "invalid parameter %q", a)
			}
		}
		if zone == nil {
			return errAt(d, "\"limit_req\" must have \"zone\" parameter")
		}
		_ = delaySet
		rl.Zone = zone.Zone
		for _, e := range l.Req {
			if e.Zone == rl.Zone {
				return errAt(d, "\"limit_req\" directive is duplicate")
			}
		}
		l.Req = append(l.Req, rl)
		l.ReqKeys = append(l.ReqKeys, &zone.Key)
	case "limit_conn":
		if *firstConn {
			l.Conn = nil
			*firstConn = false
		}
		z, ok := c.connZones[d.Args[0]]
		if !ok {
			return errAt(d, "zero size shared memory zone %q", d.Args[0])
		}
		n, err := strconv.Atoi(d.Args[1])
		if err != nil || n <= 0 || n > 65535 {
			return errAt(d, "invalid number of connections %q", d.Args[1])
		}
		for _, e := range l.Conn {
			if e.Zone == z.Zone {
				return errAt(d, "\"limit_conn\" directive is duplicate")
			}
		}
		l.Conn = append(l.Conn, ConnLimit{Zone: z.Zone, Key: &z.Key, N: n})
	case "limit_req_status", "limit_conn_status":
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n < 400 || n > 599 {
			return errAt(d, "value must be between 400 and 599")
		}
		if d.Name == "limit_req_status" {
			l.ReqStatus = n
		} else {
			l.ConnStatus = n
		}
	case "limit_req_dry_run":
		l.ReqDryRun = d.Args[0] == "on"
	case "limit_conn_dry_run":
		l.ConnDryRun = d.Args[0] == "on"
	case "limit_req_log_level", "limit_conn_log_level":
		lv, ok := map[string]int{"info": LevelInfo, "notice": LevelNotice, "warn": LevelWarn, "error": LevelError}[d.Args[0]]
		if !ok {
			return errAt(d, "invalid value %q in %q directive", d.Args[0], d.Name)
		}
		if d.Name == "limit_req_log_level" {
			l.ReqLogLevel = lv
		}
	default:
		return fmt.Errorf("limitDirective: %s", d.Name)
	}
	return nil
}

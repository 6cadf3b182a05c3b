package snapshot

import (
	"os"
	"path/filepath"
	"strings"

	"edgeproxy/accesslog"
	"edgeproxy/config"
)

// Escape is a log_format escaping mode.
type Escape uint8

// Escaping modes of log_format (ngx_http_log_module).
const (
	EscapeDefault Escape = iota // `"`, `\` and bytes outside 0x20..0x7e as \xXX; empty values as "-"
	EscapeJSON                  // JSON string escaping; empty values as ""
	EscapeNone                  // raw; empty values as "-"
)

// LogFormat is a compiled log_format.
type LogFormat struct {
	Name   string
	Escape Escape
	Tmpl   Template
}

// AccessLog is one compiled access_log directive.
type AccessLog struct {
	File   *accesslog.File
	Format *LogFormat
	If     *Template // if=condition: skip the line when it evaluates to "" or "0"
}

// combined is nginx's predefined format, byte for byte.
const combined = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`

func (c *compiler) logFormats(ds []*config.Directive) error {
	t, _ := CompileTemplate(combined)
	c.formats = map[string]*LogFormat{"combined": {Name: "combined", Tmpl: t}}
	for _, d := range ds {
		if d.Name != "log_format" {
			continue
		}
		args := d.Args
		f := &LogFormat{Name: args[0]}
		args = args[1:]
		if len(args) > 0 && strings.HasPrefix(args[0], "escape=") {
			switch args[0][7:] {
			case "default":
			case "json":
				f.Escape = EscapeJSON
			case "none":
				f.Escape = EscapeNone
			default:
				return errAt(d, "unknown log format escaping %q", args[0][7:])
			}
			args = args[1:]
		}
		if _, dup := c.formats[f.Name]; dup {
			return errAt(d, "duplicate \"log_format\" name %q", f.Name)
		}
		tp, err := c.tmpl(d, strings.Join(args, ""))
		if err != nil {
			return err
		}
		if err := checkCaptures(&tp, nil, nil); err != nil {
			return errAt(d, "%s", err.Error())
		}
		f.Tmpl = tp
		c.formats[f.Name] = f
	}
	return nil
}

// accessLog compiles `access_log path [format [buffer=] [flush=] [if=]] | off`.
func (c *compiler) accessLog(d *config.Directive, loc *Location, first bool) error {
	if first {
		loc.AccessLogs, loc.AccessOff = nil, false
		loc.accessSet = true
	}
	if d.Args[0] == "off" {
		if len(d.Args) > 1 {
			return errAt(d, "invalid parameter %q", d.Args[1])
		}
		loc.AccessOff = true
		return nil
	}
	path := d.Args[0]
	if strings.HasPrefix(path, "syslog:") {
		return errAt(d, `"access_log" to syslog is not supported by edgeproxy yet`)
	}
	if strings.Contains(path, "$") {
		return errAt(d, `"access_log" with variables in the path is not supported by edgeproxy yet`)
	}
	al := AccessLog{Format: c.formats["combined"]}
	rest := d.Args[1:]
	if len(rest) > 0 && !strings.Contains(rest[0], "=") && rest[0] != "gzip" {
		f, ok := c.formats[rest[0]]
		if !ok {
			return errAt(d, "unknown log format %q", rest[0])
		}
		al.Format = f
		rest = rest[1:]
	}
	for _, a := range rest {
		switch {
		case strings.HasPrefix(a, "buffer="):
			if _, err := config.ParseSize(a[7:]); err != nil {
				return errAt(d, "invalid buffer size %q", a[7:])
			}
		case strings.HasPrefix(a, "flush="):
			if _, err := config.ParseTime(a[6:]); err != nil {
				return errAt(d, "invalid flush time %q", a[6:])
			}
		case strings.HasPrefix(a, "if="):
			t, err := c.tmpl(d, a[3:])
			if err != nil {
				return err
			}
			al.If = &t
		case a == "gzip" || strings.HasPrefix(a, "gzip="):
			return errAt(d, `"access_log ... gzip" is not supported by edgeproxy yet`)
		default:
			return errAt(d, "invalid parameter %q", a)
		}
	}
	f, err := c.snap.Logs.Open(c.path(path))
	if err != nil {
		return errAt(d, "open() %q failed (%v)", c.path(path), err)
	}
	al.File = f
	loc.AccessLogs = append(loc.AccessLogs, al)
	return nil
}

// defaultAccessLog is nginx's "access_log logs/access.log combined" when no
// level configures one; it is used only when the prefix has a logs
// directory (nginx itself fails to start otherwise).
func (c *compiler) defaultAccessLog(base *Location) {
	if base.accessSet {
		return
	}
	dir := filepath.Join(c.prefix, "logs")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return
	}
	f, err := c.snap.Logs.Open(filepath.Join(dir, "access.log"))
	if err != nil {
		return
	}
	base.AccessLogs = []AccessLog{{File: f, Format: c.formats["combined"]}}
}

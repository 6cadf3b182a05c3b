package snapshot

import (
	"os"
	"path/filepath"

	"edgeproxy/accesslog"
	"edgeproxy/config"
)

// Log levels of error_log, nginx's order (lower is more severe).
const (
	LevelEmerg = iota
	LevelAlert
	LevelCrit
	LevelError
	LevelWarn
	LevelNotice
	LevelInfo
	LevelDebug
)

var levelNames = map[string]int{"emerg": LevelEmerg, "alert": LevelAlert, "crit": LevelCrit, "error": LevelError,
	"warn": LevelWarn, "notice": LevelNotice, "info": LevelInfo, "debug": LevelDebug}

// LevelName returns nginx's name of a level.
func LevelName(l int) string {
	for n, v := range levelNames {
		if v == l {
			return n
		}
	}
	return "error"
}

// ErrorLog is a compiled error_log: where lines go and the lowest
// severity written. A nil File writes to stderr.
type ErrorLog struct {
	File  *accesslog.File
	Level int
}

// errorLog compiles `error_log FILE [LEVEL]` at any level.
func (c *compiler) errorLog(d *config.Directive) (*ErrorLog, error) {
	el := &ErrorLog{Level: LevelError}
	if len(d.Args) > 1 {
		l, ok := levelNames[d.Args[1]]
		if !ok {
			return nil, errAt(d, "invalid log level %q", d.Args[1])
		}
		el.Level = l
	}
	switch p := d.Args[0]; {
	case p == "stderr":
	case len(p) > 7 && p[:7] == "syslog:":
		return nil, errAt(d, `"error_log" to syslog is not supported by edgeproxy yet`)
	case p == "/dev/null":
		el.Level = -1
	default:
		f, err := c.snap.Logs.Open(c.path(p))
		if err != nil {
			return nil, errAt(d, "open() %q failed (%v)", c.path(p), err)
		}
		el.File = f
	}
	return el, nil
}

// defaultErrorLog is nginx's logs/error.log under the prefix when that
// directory exists, else stderr.
func (c *compiler) defaultErrorLog() *ErrorLog {
	dir := filepath.Join(c.prefix, "logs")
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		if f, err := c.snap.Logs.Open(filepath.Join(dir, "error.log")); err == nil {
			return &ErrorLog{File: f, Level: LevelError}
		}
	}
	return &ErrorLog{Level: LevelError}
}

// Package config reads nginx configuration files the way nginx 1.22 does:
// the same tokenizer (ngx_conf_read_token), the same include semantics
// (ngx_conf_include), the same directive table checks (ngx_conf_handler) and
// the same error messages, so that an nginx.conf that nginx -t accepts is
// accepted here and one that nginx rejects is rejected with nginx's wording.
//
// On top of nginx's checks, Validate reports every directive edgeproxy does
// not implement as an error (never silently ignored) and every directive that
// only tunes nginx internals as a Notice.
//
// Nothing in this package keeps global mutable state; every function may be
// called from any goroutine. A *Config must not be mutated concurrently.
package config

import (
	"strconv"
)

// Directive is one parsed directive.
//
// Block is nil when the directive has no block; non-nil (possibly empty) when
// it was written with "{ ... }". Args are the words after the name, after
// quote removal and escape processing exactly as nginx stores them; variables
// such as $host are kept as text.
//
// File is the path as nginx prints it in messages (prefix-joined, not
// cleaned); it is "" for directives that came from Options.Globals (-g).
// Line is the line nginx reports for this directive: the line of the ";" or
// "{" that terminated it (cf->conf_file->line when ngx_conf_handler runs).
type Directive struct {
	Name  string
	Args  []string
	Block []*Directive
	File  string
	Line  int
}

// Options are the command-line settings that influence loading.
// The zero value means: no prefix (paths are used as given, relative paths
// resolve against the process working directory) and no -g directives.
type Options struct {
	// Prefix is nginx's -p. A relative config path is joined to it; include
	// paths are relative to the directory of the main config file (nginx's
	// conf prefix). A missing trailing "/" is added, as nginx does.
	Prefix string
	// Globals is nginx's -g: main-context directives. Like nginx
	// (ngx_init_cycle runs ngx_conf_param before ngx_conf_parse) they are
	// parsed before the file, so they come first in Config.Main, and a
	// non-repeatable directive given in both places is reported as
	// "directive is duplicate" at its occurrence in the file.
	Globals string
}

// Config is a loaded configuration.
// The zero value is an empty configuration (which Validate rejects, like
// nginx, for lacking an events block).
type Config struct {
	// Main holds the main-context directives after include expansion: each
	// "include" is replaced, at its place, by the directives of the files it
	// names.
	Main []*Directive
	// Files lists every file read, main config first, each once, in the
	// order nginx first opened them (the order of nginx -T).
	Files []string
	// Notices are Validate's notices, filled in by Load.
	Notices []Notice

	// contents caches the bytes read for each file so Dump prints what was
	// parsed even if a file changed since.
	contents map[string][]byte
}

// Error is a configuration error worded exactly like nginx's "[emerg]"
// messages (ngx_conf_log_error).
//
// The zero Location (File == "", Line == 0, CommandLine == false) means the
// error has no location, like nginx's errors opening the main config file.
type Error struct {
	File string
	Line int
	Msg  string
	// CommandLine marks errors in Options.Globals; nginx then prints
	// "in command line" instead of a file and line.
	CommandLine bool
}

// Error returns Msg followed by the location as nginx prints it:
// "MSG in FILE:LINE", "MSG in command line", or just "MSG".
func (e *Error) Error() string {
	switch {
	case e.CommandLine:
		return e.Msg + " in command line"
	case e.File == "" && e.Line == 0:
		return e.Msg
	}
	return e.Msg + " in " + e.File + ":" + strconv.Itoa(e.Line)
}

// Notice is an informational finding of Validate: a directive edgeproxy
// accepts but that has no effect (it tunes nginx internals only).
type Notice struct {
	File      string
	Line      int
	Directive string
	Msg       string
}

// String formats the notice like an error location ("MSG in FILE:LINE").
func (n Notice) String() string {
	if n.File == "" {
		return n.Msg + " in command line"
	}
	return n.Msg + " in " + n.File + ":" + strconv.Itoa(n.Line)
}

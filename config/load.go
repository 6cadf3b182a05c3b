package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Load reads the configuration file at path like "nginx -t -p Prefix -c path
// -g Globals": -g directives first, then the file, expanding includes (glob
// patterns sorted like glob(3)) while reading, then Validate.
//
// When the configuration is invalid, the returned error is an *Error holding
// the first problem in nginx's order; the returned *Config is then nil.
// Load may be called from any goroutine.
func Load(path string, opt Options) (*Config, error) {
	prefix := opt.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	// ngx_process_options: the conf file is relative to the prefix, and the
	// conf prefix (base of relative includes) is the conf file's directory.
	full := path
	if !strings.HasPrefix(path, "/") {
		full = prefix + path
	}
	confPrefix := prefix
	if i := strings.LastIndexByte(full, '/'); i > 0 {
		confPrefix = full[:i+1]
	}

	l := &loader{confPrefix: confPrefix, cfg: &Config{contents: map[string][]byte{}}}
	var perr *Error
	if opt.Globals != "" {
		dirs, err := parse(newLexer("", []byte(opt.Globals), true), l.include, 0)
		l.cfg.Main = append(l.cfg.Main, dirs...)
		perr = err
	}
	if perr == nil {
		dirs, err := l.parseFile(full, nil, 0)
		l.cfg.Main = append(l.cfg.Main, dirs...)
		perr = err
	}

	// Every directive in the (possibly partial) tree was handled by nginx
	// before it reached a syntax error, so a table error among them is the
	// one nginx reports first.
	notices, verr, unsupported := validate(l.cfg, perr != nil)
	if verr != nil {
		return nil, verr
	}
	if perr != nil {
		return nil, perr
	}
	// edgeproxy's own verdict only once nginx would have accepted the file.
	if unsupported != nil {
		return nil, unsupported
	}
	l.cfg.Notices = notices
	return l.cfg, nil
}

type loader struct {
	confPrefix string
	cfg        *Config
	incDepth   int
}

// include implements ngx_conf_include (and the include handling of the
// types/map/geo handlers, which behave the same for a plain path).
func (l *loader) include(d *Directive, depth int) ([]*Directive, *Error) {
	name := d.Args[0]
	if !strings.HasPrefix(name, "/") {
		name = l.confPrefix + name
	}
	if l.incDepth >= MaxIncludeDepth {
		return nil, dirErr(d, "include nesting is deeper than "+itoa(MaxIncludeDepth)+" levels (recursive include of \""+cstr(name)+"\"?)")
	}
	l.incDepth++
	defer func() { l.incDepth-- }()

	if !strings.ContainsAny(name, "*?[") {
		return l.parseFile(name, d, depth)
	}
	// ngx_open_glob: glob(3) with flags 0, so the result is sorted and a
	// pattern matching nothing is fine (gl.test = 1 accepts GLOB_NOMATCH).
	var out []*Directive
	for _, m := range glob(name) {
		dirs, err := l.parseFile(m, d, depth)
		out = append(out, dirs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// parseFile reads and parses one file. from is the include directive that
// names it, nil for the main file (nginx then has no location to print).
func (l *loader) parseFile(name string, from *Directive, depth int) ([]*Directive, *Error) {
	src, err := os.ReadFile(name)
	if err != nil {
		op := "open()"
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "read" {
			op = "pread()"
		}
		msg := op + " \"" + cstr(name) + "\" failed" + errnoText(err)
		if from == nil || op == "pread()" {
			return nil, &Error{Msg: msg}
		}
		return nil, dirErr(from, msg)
	}
	if _, ok := l.cfg.contents[name]; !ok {
		l.cfg.contents[name] = src
		l.cfg.Files = append(l.cfg.Files, name)
	}
	return parse(newLexer(name, src, false), l.include, depth)
}

// dirErr builds an error located at directive d.
func dirErr(d *Directive, msg string) *Error {
	return &Error{File: d.File, Line: d.Line, Msg: msg, CommandLine: d.File == ""}
}

// errnoNames are glibc's strerror texts, which nginx prints as
// " (ERRNO: TEXT)" after a failed system call.
var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT:       "No such file or directory",
	syscall.EACCES:       "Permission denied",
	syscall.EISDIR:       "Is a directory",
	syscall.ENOTDIR:      "Not a directory",
	syscall.ELOOP:        "Too many levels of symbolic links",
	syscall.EMFILE:       "Too many open files",
	syscall.ENAMETOOLONG: "File name too long",
	syscall.EIO:          "Input/output error",
}

func errnoText(err error) string {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return ""
	}
	text, ok := errnoNames[en]
	if !ok {
		text = en.Error()
		if text != "" {
			text = strings.ToUpper(text[:1]) + text[1:]
		}
	}
	return " (" + itoa(int(en)) + ": " + text + ")"
}

// glob expands pattern like glob(3) with no flags: sorted by byte order of
// the whole path (C locale strcmp), wildcards never match a leading "." of
// a name, and unreadable directories are skipped.
func glob(pattern string) []string {
	parts := strings.Split(pattern, "/")
	cur := []string{""}
	if strings.HasPrefix(pattern, "/") {
		cur = []string{"/"}
		parts = parts[1:]
	}
	for i, part := range parts {
		last := i == len(parts)-1
		var next []string
		if !strings.ContainsAny(part, "*?[") {
			for _, c := range cur {
				p := joinPath(c, unescapeGlob(part))
				if _, err := os.Lstat(p); err == nil || !last {
					next = append(next, p)
				}
			}
			cur = next
			continue
		}
		for _, c := range cur {
			dir := c
			if dir == "" {
				dir = "."
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				n := e.Name()
				if strings.HasPrefix(n, ".") && !strings.HasPrefix(part, ".") {
					continue
				}
				if ok, err := filepath.Match(part, n); err == nil && ok {
					next = append(next, joinPath(c, n))
				}
			}
		}
		cur = next
	}
	sort.Strings(cur)
	return cur
}

func joinPath(dir, name string) string {
	switch {
	case dir == "":
		return name
	case strings.HasSuffix(dir, "/"):
		return dir + name
	}
	return dir + "/" + name
}

func unescapeGlob(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

package config

// Validate checks every directive against the directive table, in the order
// nginx handles them (ngx_conf_handler), and returns the first error with
// nginx's wording. Only when nginx itself would accept the configuration
// does it report edgeproxy's own verdict: the first directive edgeproxy does
// not implement (`"rewrite" directive is not supported by edgeproxy`), so a
// broken nginx.conf always gets nginx's message. It returns a Notice for
// every directive that is accepted but has no effect.
//
// A Config without an events block is rejected like nginx does (`no
// "events" section in configuration`). Directives named "include" that are
// still present (a tree from Parse) are checked but not expanded.
// Validate does not modify c and may be called from any goroutine.
func Validate(c *Config) (notices []Notice, err error) {
	n, verr, unsupported := validate(c, false)
	if verr != nil {
		return n, verr
	}
	if unsupported != nil {
		return n, unsupported
	}
	return n, nil
}

type validator struct {
	notices     []Notice
	unsupported *Error // first directive edgeproxy does not implement
}

// validate checks c and returns nginx's first error (nginxErr) and,
// separately, edgeproxy's first "not supported" error. partial is set when
// c is what was read before a syntax error, so the checks nginx only makes
// after a complete parse are skipped.
func validate(c *Config, partial bool) (notices []Notice, nginxErr, unsupported *Error) {
	v := &validator{}
	if err := v.block(c.Main, CtxMain); err != nil {
		return v.notices, err, v.unsupported
	}
	if partial {
		return v.notices, nil, v.unsupported
	}
	// ngx_event_init_conf: checked once the whole file is parsed.
	hasEvents := false
	for _, d := range c.Main {
		if d.Name == "events" {
			hasEvents = true
		}
	}
	if !hasEvents {
		return v.notices, &Error{Msg: `no "events" section in configuration`}, v.unsupported
	}
	return v.notices, nil, v.unsupported
}

// unsupportedAt records the first edgeproxy-only error.
func (v *validator) unsupportedAt(d *Directive, msg string) {
	if v.unsupported == nil {
		v.unsupported = dirErr(d, msg)
	}
}

// block validates the directives of one block whose content is in ctx.
func (v *validator) block(dirs []*Directive, ctx Context) *Error {
	seen := map[string]bool{}
	var rootOrAlias string // "root" or "alias" once one was set here
	for _, d := range dirs {
		name := cstr(d.Name)
		spec, known := LookupIn(d.Name, ctx)
		if spec == nil {
			if known {
				return dirErr(d, `"`+name+`" directive is not allowed here`)
			}
			return dirErr(d, `unknown directive "`+name+`"`)
		}
		isBlock := spec.Arity&Block != 0
		if !isBlock && d.Block != nil {
			return dirErr(d, `directive "`+name+`" is not terminated by ";"`)
		}
		if isBlock && d.Block == nil {
			return dirErr(d, `directive "`+name+`" has no opening "{"`)
		}
		if !spec.Arity.argsOK(len(d.Args)) && !extensionArity[name].argsOK(len(d.Args)) {
			return dirErr(d, `invalid number of arguments in "`+name+`" directive`)
		}

		// From here on: what the directive's set handler checks.
		if spec.Arity&Flag != 0 {
			if _, err := ParseFlag(d.Args[0]); err != nil {
				return dirErr(d, `invalid value "`+cstr(d.Args[0])+`" in "`+name+`" directive, it must be "on" or "off"`)
			}
		}
		if d.Name == "root" || d.Name == "alias" {
			// ngx_http_core_root: root and alias share one setting.
			if rootOrAlias == d.Name {
				return dirErr(d, `"`+name+`" directive is duplicate`)
			}
			if rootOrAlias != "" {
				return dirErr(d, `"`+name+`" directive is duplicate, "`+rootOrAlias+`" directive was specified earlier`)
			}
			rootOrAlias = d.Name
		} else if spec.Unique {
			if seen[d.Name] {
				return dirErr(d, `"`+name+`" directive is duplicate`)
			}
			seen[d.Name] = true
		}
		if err := v.checkValue(d); err != nil {
			return err
		}

		switch spec.Support {
		case NotImplemented:
			v.unsupportedAt(d, `"`+name+`" directive is not supported by edgeproxy`)
		case Accepted:
			v.notices = append(v.notices, Notice{
				File: d.File, Line: d.Line, Directive: d.Name,
				Msg: `"` + name + `" directive has no effect in edgeproxy (it only tunes nginx internals)`,
			})
		}

		if d.Block == nil {
			continue
		}
		body := spec.Body
		if d.Name == "if" {
			// ngx_http_rewrite_if: the "if" block is a server-if or a
			// location-if depending on where it is written.
			body = CtxLocationIf
			if ctx == CtxServer {
				body = CtxServerIf
			}
		}
		var err *Error
		if body == CtxFreeform {
			err = freeform(d.Block)
		} else {
			err = v.block(d.Block, body)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// freeform checks the lines of a block parsed by a custom handler (types,
// map, ...): ngx_conf_parse rejects any "{" there, and an "include" that was
// not expanded has the wrong number of arguments.
func freeform(dirs []*Directive) *Error {
	for _, d := range dirs {
		if d.Block != nil {
			return dirErr(d, `unexpected "{"`)
		}
		if d.Name == "include" && len(d.Args) != 1 {
			return dirErr(d, `invalid number of arguments in "include" directive`)
		}
	}
	return nil
}

// checkValue holds the few argument checks of directive handlers that
// Validate makes itself; everything else is left to the compiler.
func (v *validator) checkValue(d *Directive) *Error {
	switch d.Name {
	case "worker_processes":
		// ngx_set_worker_processes: "auto" or a number.
		if d.Args[0] != "auto" {
			if _, ok := atoi(d.Args[0]); !ok {
				return dirErr(d, `"worker_processes" directive invalid value`)
			}
		}
	case "autoindex":
		if on, _ := ParseFlag(d.Args[0]); on {
			v.unsupportedAt(d, `"autoindex on" is not supported by edgeproxy, only "autoindex off"`)
		}
	}
	return nil
}

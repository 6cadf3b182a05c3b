package config

// MaxDepth bounds block nesting (counting blocks in included files at the
// depth of their include). nginx itself has no limit, but real
// configurations nest a handful of levels (http > server > location >
// location > if); the bound keeps hostile input from building arbitrarily
// deep trees that later recursive passes would have to walk.
const MaxDepth = 100

// MaxIncludeDepth bounds include nesting. nginx has no loop detection: a
// file including itself recurses until open() fails with EMFILE. We stop
// much earlier with a clear message.
const MaxIncludeDepth = 32

// includeFunc expands one "include" directive in place; it returns the
// directives read (possibly partial when it also returns an error).
type includeFunc func(d *Directive, depth int) ([]*Directive, *Error)

// Parse parses one buffer as an nginx configuration file named name
// (parse_file mode of ngx_conf_parse), without include expansion: include
// directives are returned as ordinary directives. No directive table checks
// are made (see Validate).
//
// On error, Parse returns the directives completed before the error together
// with the *Error, so callers can report errors in nginx's order (a
// directive nginx would have rejected before reaching the syntax error).
// Parse never panics, whatever the input.
func Parse(name string, src []byte) ([]*Directive, error) {
	dirs, err := parse(newLexer(name, src, false), nil, 0)
	if err != nil {
		return dirs, err
	}
	return dirs, nil
}

// parse is ngx_conf_parse for one buffer (a file or the -g parameter).
// Blocks are handled with an explicit stack instead of recursion so that
// deep nesting costs no Go stack.
func parse(lx *lexer, include includeFunc, depth int) ([]*Directive, *Error) {
	root := []*Directive{}
	stack := []*[]*Directive{&root}
	for {
		rc, err := lx.readToken()
		if err != nil {
			return root, err
		}
		cur := stack[len(stack)-1]
		switch rc {
		case tokBlockDone:
			if len(stack) == 1 {
				return root, lx.errorf(lx.line, `unexpected "}"`)
			}
			stack = stack[:len(stack)-1]
			continue
		case tokFileDone:
			if len(stack) > 1 {
				return root, lx.errorf(lx.line, `unexpected end of file, expecting "}"`)
			}
			return root, nil
		case tokBlockStart:
			if lx.param {
				return root, lx.errorf(lx.line, "block directives are not supported in -g option")
			}
		}

		d := &Directive{
			Name: lx.args[0],
			File: lx.file,
			Line: lx.line,
		}
		if len(lx.args) > 1 {
			d.Args = append([]string(nil), lx.args[1:]...)
		}
		if rc == tokBlockStart {
			if depth+len(stack) > MaxDepth {
				return root, lx.errorf(lx.line, "too deep nesting of blocks, more than "+itoa(MaxDepth)+" levels")
			}
			d.Block = []*Directive{}
			*cur = append(*cur, d)
			stack = append(stack, &d.Block)
			continue
		}
		// ngx_conf_include runs while the file is being read, so the
		// included directives take the include's place (and its context).
		if include != nil && d.Name == "include" && len(d.Args) == 1 {
			dirs, ierr := include(d, depth+len(stack)-1)
			*cur = append(*cur, dirs...)
			if ierr != nil {
				return root, ierr
			}
			continue
		}
		*cur = append(*cur, d)
	}
}

package config

import (
	"strconv"
)

// confBuffer mirrors NGX_CONF_BUFFER (ngx_conf_file.c): nginx reads a
// configuration file through a 4096-byte window, and a single token (or a
// comment) that does not fit into that window is rejected with "too long
// parameter". We reproduce the limit so that a file nginx refuses is refused
// here too, and so that a hostile file cannot make one token unbounded.
const confBuffer = 4096

// Result kinds of readToken, named after ngx_conf_read_token's return codes.
const (
	tokOK         = iota // NGX_OK: arguments terminated by ";"
	tokBlockStart        // NGX_CONF_BLOCK_START: arguments terminated by "{"
	tokBlockDone         // NGX_CONF_BLOCK_DONE: "}" found
	tokFileDone          // NGX_CONF_FILE_DONE: end of input
)

// lexer is a direct port of ngx_conf_read_token (nginx 1.22
// src/core/ngx_conf_file.c). The control flow is kept close to the C code on
// purpose: every quirk of nginx's tokenizer (where "#" starts a comment,
// what may follow a closing quote, "${" inside words, how escapes are
// unescaped) is user-visible, and porting the state machine literally is the
// only way to keep them all.
//
// A lexer is not safe for concurrent use; it is owned by one parse call.
type lexer struct {
	src  []byte
	pos  int    // index of the next byte to read (b->pos)
	line int    // current line (cf->conf_file->line)
	file string // file name for errors; "" for -g parameters
	// param is true for the -g command line buffer (parse_param in
	// ngx_conf_parse): no 4096-byte window, different EOF message.
	param bool
	// bufEnd simulates b->last of nginx's read window, see confBuffer.
	bufEnd int
	args   []string
}

func newLexer(file string, src []byte, param bool) *lexer {
	lx := &lexer{src: src, line: 1, file: file, param: param}
	if param {
		// ngx_conf_param: conf_file.line = 0 and the whole string is the buffer.
		lx.line = 0
		lx.bufEnd = len(src)
	} else {
		lx.bufEnd = min(len(src), confBuffer)
	}
	return lx
}

func (lx *lexer) errorf(line int, msg string) *Error {
	return &Error{File: lx.file, Line: line, Msg: msg, CommandLine: lx.param}
}

func isSpace(ch byte) bool {
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'
}

// readToken reads one directive's words into lx.args and reports what
// terminated them.
func (lx *lexer) readToken() (int, *Error) {
	var (
		found, needSpace, sharpComment, variable bool
		quoted, sQuoted, dQuoted                 bool
		lastSpace                                = true
	)
	lx.args = lx.args[:0]
	start := lx.pos
	startLine := lx.line

	for {
		if lx.pos >= lx.bufEnd {
			if lx.bufEnd >= len(lx.src) {
				if len(lx.args) > 0 || !lastSpace {
					if lx.param {
						return 0, lx.errorf(lx.line, `unexpected end of parameter, expecting ";"`)
					}
					return 0, lx.errorf(lx.line, `unexpected end of file, expecting ";" or "}"`)
				}
				return tokFileDone, nil
			}
			// Refill of nginx's window: the pending token is moved to the
			// start of the buffer; if it already fills the whole buffer the
			// token is too long.
			if lx.pos-start == confBuffer {
				lx.line = startLine
				if dQuoted || sQuoted {
					ch := byte('"')
					if sQuoted {
						ch = '\''
					}
					return 0, lx.errorf(lx.line, "too long parameter, probably missing terminating \""+string(ch)+"\" character")
				}
				return 0, lx.errorf(lx.line, "too long parameter \""+cstr(string(lx.src[start:start+10]))+"...\" started")
			}
			lx.bufEnd = min(len(lx.src), start+confBuffer)
		}

		ch := lx.src[lx.pos]
		lx.pos++

		if ch == '\n' {
			lx.line++
			if sharpComment {
				sharpComment = false
			}
		}
		if sharpComment {
			continue
		}
		if quoted {
			quoted = false
			continue
		}

		if needSpace {
			if isSpace(ch) {
				lastSpace = true
				needSpace = false
				continue
			}
			if ch == ';' {
				return tokOK, nil
			}
			if ch == '{' {
				return tokBlockStart, nil
			}
			if ch == ')' {
				lastSpace = true
				needSpace = false
			} else {
				return 0, lx.errorf(lx.line, "unexpected \""+string(ch)+"\"")
			}
		}

		if lastSpace {
			start = lx.pos - 1
			startLine = lx.line
			if isSpace(ch) {
				continue
			}
			switch ch {
			case ';', '{':
				if len(lx.args) == 0 {
					return 0, lx.errorf(lx.line, "unexpected \""+string(ch)+"\"")
				}
				if ch == '{' {
					return tokBlockStart, nil
				}
				return tokOK, nil
			case '}':
				if len(lx.args) != 0 {
					return 0, lx.errorf(lx.line, `unexpected "}"`)
				}
				return tokBlockDone, nil
			case '#':
				sharpComment = true
				continue
			case '\\':
				quoted = true
				lastSpace = false
				continue
			case '"':
				start++
				dQuoted = true
				lastSpace = false
				continue
			case '\'':
				start++
				sQuoted = true
				lastSpace = false
				continue
			case '$':
				variable = true
				lastSpace = false
				continue
			default:
				lastSpace = false
			}
		} else {
			// "${name}" inside a word: the "{" does not start a block.
			if ch == '{' && variable {
				continue
			}
			variable = false
			if ch == '\\' {
				quoted = true
				continue
			}
			if ch == '$' {
				variable = true
				continue
			}
			if dQuoted {
				if ch == '"' {
					dQuoted = false
					needSpace = true
					found = true
				}
			} else if sQuoted {
				if ch == '\'' {
					sQuoted = false
					needSpace = true
					found = true
				}
			} else if isSpace(ch) || ch == ';' || ch == '{' {
				lastSpace = true
				found = true
			}

			if found {
				lx.args = append(lx.args, unescape(lx.src[start:lx.pos-1]))
				if ch == ';' {
					return tokOK, nil
				}
				if ch == '{' {
					return tokBlockStart, nil
				}
				found = false
			}
		}
	}
}

// unescape copies a word the way ngx_conf_read_token does: \" \' and \\ lose
// the backslash, \t \r \n become the control characters, and any other
// backslash is kept literally (so "\d" in a regex stays "\d").
func unescape(w []byte) string {
	hasBS := false
	for _, c := range w {
		if c == '\\' {
			hasBS = true
			break
		}
	}
	if !hasBS {
		return string(w)
	}
	dst := make([]byte, 0, len(w))
	for i := 0; i < len(w); {
		if w[i] == '\\' && i+1 < len(w) {
			switch w[i+1] {
			case '"', '\'', '\\':
				i++
			case 't':
				dst = append(dst, '\t')
				i += 2
				continue
			case 'r':
				dst = append(dst, '\r')
				i += 2
				continue
			case 'n':
				dst = append(dst, '\n')
				i += 2
				continue
			}
		}
		dst = append(dst, w[i])
		i++
	}
	return string(dst)
}

// cstr truncates s at the first NUL byte: nginx prints directive names and
// values with "%s", so a NUL inside a word cuts the message there.
func cstr(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i]
		}
	}
	return s
}

// itoa is strconv.Itoa, kept short for message building.
func itoa(n int) string { return strconv.Itoa(n) }

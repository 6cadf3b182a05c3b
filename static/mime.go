package static

import (
	_ "embed"
	"fmt"
	"strings"
)

// nginxMimeTypes is a verbatim copy of the mime.types file shipped with
// nginx 1.22 (conf/mime.types, /etc/nginx/mime.types on Debian).
//
//go:embed mime.types
var nginxMimeTypes string

// maxExtLen bounds the extensions Lookup lowercases on the stack; longer
// extensions are rejected by Add and never match.
const maxExtLen = 64

// Types maps file extensions to MIME types, like nginx's `types {}` block.
//
// The zero value is not usable; use NewTypes, DefaultTypes, BuiltinTypes or
// ParseMimeTypes. Add must only be called while configuring (from a single
// goroutine, before the Types is shared); Lookup may then be called
// concurrently from any goroutine.
type Types struct {
	m map[string][]byte
}

// NewTypes returns an empty table (what `types {}` configures).
func NewTypes() *Types { return &Types{m: make(map[string][]byte)} }

// Add maps each extension to mime. Extensions are lowercased (nginx calls
// ngx_hash_strlow on them in ngx_http_core_type); a duplicate extension
// replaces the earlier type, as nginx does after warning "duplicate
// extension". Extensions longer than 64 bytes are ignored.
func (t *Types) Add(mime string, exts ...string) {
	v := []byte(mime)
	for _, e := range exts {
		if len(e) == 0 || len(e) > maxExtLen {
			continue
		}
		t.m[strings.ToLower(e)] = v
	}
}

// Len returns the number of extensions in the table.
func (t *Types) Len() int { return len(t.m) }

// Lookup returns the MIME type for the extension of path, or nil if there
// is none (the caller then uses default_type, "text/plain" unless
// configured). The returned slice is shared and must not be modified.
//
// The extension is found like ngx_http_set_exten: scanning back from the
// end, the bytes after the last '.' of the last path segment, where a '.'
// directly after '/' (a hidden file such as "/.htaccess") does not start
// an extension and a '.' at index 0 or 1 is not considered. nginx computes
// it on the URI; passing the filesystem path gives the same answer unless
// an alias maps to a different file name. The match is case-insensitive
// (ngx_http_set_content_type lowercases the extension). Does not allocate.
func (t *Types) Lookup(path []byte) []byte {
	var ext []byte
	for i := len(path) - 1; i > 1; i-- {
		if path[i] == '.' && path[i-1] != '/' {
			ext = path[i+1:]
			break
		} else if path[i] == '/' {
			return nil
		}
	}
	if len(ext) == 0 || len(ext) > maxExtLen {
		return nil
	}
	var buf [maxExtLen]byte
	for i, c := range ext {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return t.m[string(buf[:len(ext)])]
}

// DefaultTypes returns a new table equal to the mime.types file shipped
// with nginx 1.22, which nginx.conf usually includes
// (`include mime.types;`). Each call returns a fresh copy.
func DefaultTypes() *Types {
	t, err := ParseMimeTypes(nginxMimeTypes)
	if err != nil {
		panic(err)
	}
	return t
}

// BuiltinTypes returns nginx's compiled-in table used when no `types`
// directive is configured at all (ngx_http_core_default_types in
// ngx_http_core_module.c): html -> text/html, gif -> image/gif,
// jpg -> image/jpeg. Note "jpeg", "css" and "js" are not in it.
func BuiltinTypes() *Types {
	t := NewTypes()
	t.Add("text/html", "html")
	t.Add("image/gif", "gif")
	t.Add("image/jpeg", "jpg")
	return t
}

// ParseMimeTypes parses a file in nginx mime.types syntax: an optional
// `types {` ... `}` wrapper around `mime/type ext1 ext2 ...;` entries, with
// '#' comments and optional single or double quotes around words.
func ParseMimeTypes(src string) (*Types, error) {
	t := NewTypes()
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	i := 0
	if len(toks) >= 2 && toks[0] == "types" && toks[1] == "{" {
		if toks[len(toks)-1] != "}" {
			return nil, fmt.Errorf("static: mime types: missing \"}\"")
		}
		toks = toks[2 : len(toks)-1]
	}
	for i < len(toks) {
		j := i
		for j < len(toks) && toks[j] != ";" {
			if toks[j] == "{" || toks[j] == "}" {
				return nil, fmt.Errorf("static: mime types: unexpected %q", toks[j])
			}
			j++
		}
		if j == len(toks) {
			return nil, fmt.Errorf("static: mime types: missing \";\" after %q", toks[i])
		}
		if j-i < 2 {
			return nil, fmt.Errorf("static: mime types: invalid number of arguments near %q", strings.Join(toks[i:j+1], " "))
		}
		t.Add(toks[i], toks[i+1:j]...)
		i = j + 1
	}
	return t, nil
}

func tokenize(src string) ([]string, error) {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, src[i:i+1])
			i++
		case c == '"' || c == '\'':
			j := strings.IndexByte(src[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("static: mime types: unterminated quote")
			}
			toks = append(toks, src[i+1:i+1+j])
			i += j + 2
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n;{}#", rune(src[j])) {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	return toks, nil
}

package config

// Context is a set of configuration contexts a directive may appear in,
// mirroring nginx's NGX_MAIN_CONF, NGX_EVENT_CONF, NGX_HTTP_MAIN_CONF,
// NGX_HTTP_SRV_CONF, NGX_HTTP_LOC_CONF, NGX_HTTP_SIF_CONF, NGX_HTTP_LIF_CONF,
// NGX_HTTP_LMT_CONF and NGX_HTTP_UPS_CONF bits.
type Context uint16

const (
	CtxMain        Context = 1 << iota // top level of nginx.conf (and -g)
	CtxEvents                          // events { }
	CtxHTTP                            // http { }
	CtxServer                          // http { server { } }
	CtxLocation                        // location { } (at any nesting)
	CtxServerIf                        // "if" directly inside server
	CtxLocationIf                      // "if" inside location
	CtxLimitExcept                     // limit_except { }
	CtxUpstream                        // upstream { }

	// CtxFreeform is the Body of blocks whose content is not made of
	// directives (types, map, geo, split_clients, charset_map): nginx parses
	// them with a custom handler (cf->handler), so their lines are not
	// looked up in the directive table. It is never a Contexts bit.
	CtxFreeform Context = 1 << 15

	// noBody is the Body of directives without a block.
	noBody Context = 0

	ctxAny = CtxMain | CtxEvents | CtxHTTP | CtxServer | CtxLocation |
		CtxServerIf | CtxLocationIf | CtxLimitExcept | CtxUpstream
	// Shorthands for the common nginx combinations, used by the table.
	ctxHSL    = CtxHTTP | CtxServer | CtxLocation
	ctxHSLIf  = ctxHSL | CtxLocationIf
	ctxHSLAll = ctxHSLIf | CtxServerIf
	ctxHS     = CtxHTTP | CtxServer
)

// Arity is nginx's argument-count flags (NGX_CONF_NOARGS ... NGX_CONF_BLOCK).
// The TAKEn bits may be combined (Take12 = one or two arguments).
type Arity uint32

const (
	NoArgs  Arity = 1 << iota // NGX_CONF_NOARGS
	Take1                     // NGX_CONF_TAKE1
	Take2                     // NGX_CONF_TAKE2
	Take3                     // NGX_CONF_TAKE3
	Take4                     // NGX_CONF_TAKE4
	Take5                     // NGX_CONF_TAKE5
	Take6                     // NGX_CONF_TAKE6
	Take7                     // NGX_CONF_TAKE7
	Flag                      // NGX_CONF_FLAG: exactly one argument, "on" or "off"
	OneMore                   // NGX_CONF_1MORE: one or more arguments
	TwoMore                   // NGX_CONF_2MORE: two or more arguments
	AnyArgs                   // NGX_CONF_ANY: any number of arguments
	Block                     // NGX_CONF_BLOCK: must be followed by "{ ... }"

	Take12   = Take1 | Take2
	Take13   = Take1 | Take3
	Take23   = Take2 | Take3
	Take123  = Take1 | Take2 | Take3
	Take1234 = Take1 | Take2 | Take3 | Take4
)

// extensionArity is the argument counts that edgeproxy's extension
// parameters add to nginx directives (the table keeps nginx's own arity,
// which TestTableMatchesNginx checks): limit_req_zone and limit_conn_zone
// take redis= and sync= (package fleet).
var extensionArity = map[string]Arity{
	"limit_req_zone":  Take4 | Take5,
	"limit_conn_zone": Take3 | Take4,
}

// maxArgs is NGX_CONF_MAX_ARGS: a TAKEn directive never takes more than 8
// words including its name.
const maxArgs = 8

// argsOK is the arity check of ngx_conf_handler.
func (a Arity) argsOK(n int) bool {
	switch {
	case a&AnyArgs != 0:
		return true
	case a&Flag != 0:
		return n == 1
	case a&OneMore != 0:
		return n >= 1
	case a&TwoMore != 0:
		return n >= 2
	case n+1 > maxArgs:
		return false
	}
	return a&(NoArgs<<uint(n)) != 0
}

// Support says what edgeproxy does with a directive.
type Support uint8

const (
	// NotImplemented (the zero value, so a forgotten entry fails safe):
	// the directive changes nginx's behaviour and edgeproxy lacks it, so
	// Validate rejects it rather than silently ignoring it.
	NotImplemented Support = iota
	// Accepted: the directive only tunes nginx internals (buffers, hashes,
	// syscalls); edgeproxy checks its syntax and reports a Notice.
	Accepted
	// Implemented: edgeproxy honours the directive.
	Implemented
	// Extension: edgeproxy's own directive, absent from nginx (e.g.
	// health_check in an upstream block); honoured like Implemented.
	Extension
)

func (s Support) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Implemented:
		return "implemented"
	case Extension:
		return "edgeproxy extension"
	}
	return "not implemented"
}

// Spec describes one directive of the table (one ngx_command_t).
// A name may have several Specs with disjoint Contexts when nginx has
// several modules defining it ("server" in http and in upstream).
type Spec struct {
	Name     string
	Support  Support
	Contexts Context
	Arity    Arity
	// Unique: a second occurrence in the same block is nginx's
	// `"NAME" directive is duplicate` (slot handlers and custom handlers that
	// check for an already-set value).
	Unique bool
	// Body is the context of the directives inside the block, for Block
	// directives; CtxFreeform for blocks nginx parses with a custom handler;
	// zero (noBody) for directives without a block.
	Body Context
}

var specIndex = func() map[string][]*Spec {
	m := make(map[string][]*Spec, len(directives))
	for i := range directives {
		s := &directives[i]
		m[s.Name] = append(m[s.Name], s)
	}
	return m
}()

// Lookup returns the table entry for name (the first one when the name is
// defined for several contexts, e.g. "server" of http rather than of
// upstream). The returned Spec must not be modified.
func Lookup(name string) (*Spec, bool) {
	s := specIndex[name]
	if len(s) == 0 {
		return nil, false
	}
	return s[0], true
}

// LookupIn returns the entry for name allowed in ctx. known reports whether
// the name is a directive at all (for "not allowed here" versus "unknown
// directive").
func LookupIn(name string, ctx Context) (spec *Spec, known bool) {
	specs := specIndex[name]
	for _, s := range specs {
		if s.Contexts&ctx != 0 {
			return s, true
		}
	}
	return nil, len(specs) > 0
}

// Directives returns a copy of the whole directive table, in table order.
func Directives() []Spec {
	return append([]Spec(nil), directives...)
}

package config

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// probeContexts wraps a directive (on line 5) in each context of the table.
var probeContexts = []struct {
	ctx Context
	tpl string
}{
	{CtxMain, "\n\n\n\n%s\nevents{}\n"},
	{CtxEvents, "events {\n\n\n\n%s\n}\n"},
	{CtxHTTP, "events{}\nhttp {\n\n\n%s\n}\n"},
	{CtxServer, "events{}\nhttp {\nserver {\n\n%s\n}}\n"},
	{CtxLocation, "events{}\nhttp {\nserver {\nlocation / {\n%s\n}}}\n"},
	{CtxServerIf, "events{}\nhttp {\nserver {\nif ($a) {\n%s\n}}}\n"},
	{CtxLocationIf, "events{}\nhttp {\nserver {\nlocation / { if ($a) {\n%s\n}}}}\n"},
	{CtxLimitExcept, "events{}\nhttp {\nserver {\nlocation / { limit_except GET {\n%s\n}}}}\n"},
	{CtxUpstream, "events{}\nhttp {\nupstream u {\n\n%s\n}}\n"},
}

// TestTableMatchesNginx checks, for every directive edgeproxy implements,
// that the table's contexts and arity are nginx's: each context is probed
// with real nginx -t (allowed or "not allowed here") and the argument
// counts 0, 1, 2, 3 and 8 are probed where the directive is allowed
// ("invalid number of arguments" or not).
func TestTableMatchesNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs nginx ~700 times")
	}
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx binary not installed")
	}
	dir := t.TempDir()
	// nginx runs are fork/exec bound, so they run on more goroutines than
	// t.Parallel would allow; results are asserted in the test goroutine.
	type probe struct {
		text, tpl string
		emerg     string
		err       error
	}
	run := func(ps []*probe) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				sub := fmt.Sprintf("%s/p%d", dir, i)
				if p.err = os.MkdirAll(sub, 0o755); p.err != nil {
					return
				}
				if p.err = os.WriteFile(sub+"/nginx.conf", []byte(fmt.Sprintf(p.tpl, p.text)), 0o644); p.err != nil {
					return
				}
				p.emerg, _, p.err = execNginx(sub, sub+"/nginx.conf", "pid "+sub+"/nginx.pid; error_log stderr;")
			}()
		}
		wg.Wait()
	}

	type ctxProbe struct {
		spec *Spec
		ctx  Context
		p    *probe
	}
	type argProbe struct {
		spec  *Spec
		nargs int
		p     *probe
	}
	var cps []ctxProbe
	var aps []argProbe
	var all []*probe
	for i := range directives {
		spec := &directives[i]
		if spec.Support != Implemented || spec.Name == "include" {
			continue
		}
		allowedTpl := ""
		for _, pc := range probeContexts {
			if spec.Contexts&pc.ctx == 0 {
				// Only claim "not allowed" when no other spec of the
				// same name covers the context.
				if s, _ := LookupIn(spec.Name, pc.ctx); s != nil {
					continue
				}
			} else if allowedTpl == "" {
				allowedTpl = pc.tpl
			}
			p := &probe{text: spec.Name + ";", tpl: pc.tpl}
			cps = append(cps, ctxProbe{spec, pc.ctx, p})
			all = append(all, p)
		}
		if allowedTpl == "" {
			continue
		}
		for _, nargs := range []int{0, 1, 2, 3, 8} {
			text := strings.TrimSpace(spec.Name + " " + strings.Repeat("x ", nargs))
			if spec.Arity&Block != 0 {
				text += " {}"
			} else {
				text += ";"
			}
			p := &probe{text: text, tpl: allowedTpl}
			aps = append(aps, argProbe{spec, nargs, p})
			all = append(all, p)
		}
	}
	run(all)
	for _, c := range cps {
		if c.p.err != nil {
			t.Fatal(c.p.err)
		}
		notAllowed := strings.HasPrefix(c.p.emerg, `"`+c.spec.Name+`" directive is not allowed here`) && strings.HasSuffix(c.p.emerg, ":5")
		if want := c.spec.Contexts&c.ctx != 0; want == notAllowed {
			t.Errorf("%s in context %x: table allowed=%v, nginx says %q", c.spec.Name, c.ctx, want, c.p.emerg)
		}
	}
	for _, a := range aps {
		if a.p.err != nil {
			t.Fatal(a.p.err)
		}
		nginxBad := strings.HasPrefix(a.p.emerg, "invalid number of arguments") && strings.HasSuffix(a.p.emerg, ":5")
		if a.spec.Arity.argsOK(a.nargs) == nginxBad {
			t.Errorf("%s with %d args: table ok=%v, nginx says %q", a.spec.Name, a.nargs, !nginxBad, a.p.emerg)
		}
	}
}

// Command bench measures edgeproxy against nginx on byte-identical nginx.conf
// files, the same loopback backend and the same wrk runs, and prints the
// edgeproxy/nginx ratios as a markdown table.
//
//	go run ./bench                       # all scenarios, 3 rounds, 5 s each
//	go run ./bench -scenarios return200,static1k -duration 2s -rounds 3
//	go run ./bench -b-nginx              # nginx on both sides: ratios ≈ 1.0
//
// See bench/README.md for what is measured and how to read the output.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	edgeproxy   string
	nginx       string
	wrk         string
	scenarios   string
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	connections int
	threads     int
	out         string
	bNginx      bool
	noPin       bool
	keep        bool
	idleConns   int
	idleTimeout time.Duration
	verbose     bool
	nice        int
}

// pinnedEnv marks a harness process that has already re-executed itself
// under `taskset -c 1` (so the harness, wrk, the idle client and the
// backend share CPU 1 and the server under test has CPU 0 to itself).
const pinnedEnv = "EDGEPROXY_BENCH_PINNED"

func main() {
	var o options
	var backendMode bool
	var backendAddr string
	flag.StringVar(&o.edgeproxy, "edgeproxy", "bin/edgeproxy", "edgeproxy binary (built with go build -o bin/edgeproxy ./cmd/edgeproxy if missing)")
	flag.StringVar(&o.nginx, "nginx", "/usr/sbin/nginx", "nginx binary")
	flag.StringVar(&o.wrk, "wrk", "/usr/bin/wrk", "wrk binary")
	flag.StringVar(&o.scenarios, "scenarios", "", "comma-separated scenarios (default all: "+strings.Join(scenarioNames(), ",")+")")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured wrk duration per run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured wrk warm-up per run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs both servers once (order alternates A B, B A, ...)")
	flag.IntVar(&o.connections, "connections", 50, "wrk connections (a scenario may override, e.g. static64m uses 4)")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.StringVar(&o.out, "out", "", "also write the markdown table to this file")
	flag.BoolVar(&o.bNginx, "b-nginx", false, "testing mode: run nginx on both sides (ratios should be ≈ 1.0)")
	flag.BoolVar(&o.noPin, "no-pin", false, "do not pin with taskset (server CPU 0, wrk/harness CPU 1)")
	flag.BoolVar(&o.keep, "keep", false, "keep the per-scenario temp directories (configs, logs)")
	flag.IntVar(&o.idleConns, "idle-conns", 10000, "connections opened by the idle10k scenario")
	flag.DurationVar(&o.idleTimeout, "idle-timeout", 60*time.Second, "time bound for opening the idle connections")
	flag.BoolVar(&o.verbose, "v", false, "print per-run details")
	flag.IntVar(&o.nice, "nice", 0, "run the server, wrk and backend with autogroup nice N (e.g. -10 as root on a busy shared machine; both sides alike)")
	flag.BoolVar(&backendMode, "backend", false, "internal: run the loopback HTTP backend (100 B and 10 KiB bodies)")
	flag.StringVar(&backendAddr, "backend-addr", "127.0.0.1:0", "internal: backend listen address")
	flag.Parse()

	if backendMode {
		if err := runBackend(backendAddr); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		return
	}

	maybePin(o.noPin)

	code := run(&o)
	os.Exit(code)
}

// maybePin re-executes the harness under `taskset -c 1` once, so that every
// thread of the harness (and wrk, the backend and the idle client, which
// inherit or set the same mask) stays off CPU 0, where the server runs.
func maybePin(noPin bool) {
	if noPin || os.Getenv(pinnedEnv) != "" || runtime.NumCPU() < 2 {
		return
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), pinnedEnv+"=1")
	args := append([]string{ts, "-c", "1", self}, os.Args[1:]...)
	if err := syscall.Exec(ts, args, env); err != nil {
		fmt.Fprintln(os.Stderr, "bench: could not pin harness to CPU 1:", err)
	}
}

// pinned reports whether servers are pinned to CPU 0 and wrk to CPU 1.
func pinned(o *options) bool {
	if o.noPin {
		return false
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return false
	}
	// After maybePin re-executed us under taskset, NumCPU sees only CPU 1.
	return os.Getenv(pinnedEnv) != "" || runtime.NumCPU() >= 2
}

func run(o *options) (code int) {
	// Never leave processes behind: children get Pdeathsig, are tracked in a
	// registry, and are killed on return, on panic and on SIGINT/SIGTERM.
	defer killAll()
	defer func() {
		if r := recover(); r != nil {
			killAll()
			panic(r)
		}
	}()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "\nbench: got %v, stopping servers\n", s)
		shutdown()
		if !o.keep {
			removeTempDirs()
		}
		os.Exit(130)
	}()

	if o.rounds < 1 || o.duration <= 0 || o.connections < 1 || o.threads < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -duration, -connections and -threads must be positive")
		return 2
	}
	if o.threads > o.connections {
		o.threads = o.connections
	}
	scens, err := selectScenarios(o.scenarios)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	raiseNofile()

	for _, bin := range []string{o.nginx, o.wrk} {
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}

	a := serverSide{label: "edgeproxy", kind: kindEdgeproxy, bin: o.edgeproxy}
	b := serverSide{label: "nginx", kind: kindNginx, bin: o.nginx}
	if o.bNginx {
		a = serverSide{label: "nginx(A)", kind: kindNginx, bin: o.nginx, pidName: "nginx-a.pid"}
		b.label = "nginx(B)"
		b.pidName = "nginx-b.pid"
	} else {
		p, err := ensureEdgeproxy(o.edgeproxy)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		a.bin = p
	}
	if p, err := filepath.Abs(b.bin); err == nil {
		b.bin = p
	}

	env := &benchEnv{o: o, a: a, b: b, clkTck: clkTck(), pin: pinned(o)}
	fmt.Fprintf(os.Stderr, "bench: A=%s (%s)  B=%s (%s)  rounds=%d duration=%v conns=%d threads=%d pin=%v nice=%d CLK_TCK=%d\n",
		a.label, a.bin, b.label, b.bin, o.rounds, o.duration, o.connections, o.threads, env.pin, o.nice, env.clkTck)
	if load := loadAvg(); load > float64(runtime.NumCPU()+1) {
		fmt.Fprintf(os.Stderr, "bench: warning: load average %.1f; req/s and latency ratios will be noisy (CPU µs/req and RSS much less so)\n", load)
	}

	var results []scenarioResult
	for _, sc := range scens {
		fmt.Fprintf(os.Stderr, "== %s\n", sc.name)
		r := env.runScenario(sc)
		if r.skipped != "" {
			fmt.Fprintf(os.Stderr, "   SKIPPED: %s\n", r.skipped)
		}
		results = append(results, r)
	}

	table := renderTable(env, results)
	fmt.Print(table)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(table), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", o.out)
	}
	return 0
}

// Temp dirs still in use, removed by the signal handler (normal returns
// remove their own).
var tempDirs = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

func trackTempDir(dir string, on bool) {
	tempDirs.Lock()
	defer tempDirs.Unlock()
	if on {
		tempDirs.m[dir] = true
	} else {
		delete(tempDirs.m, dir)
	}
}

func removeTempDirs() {
	tempDirs.Lock()
	defer tempDirs.Unlock()
	for d := range tempDirs.m {
		_ = os.RemoveAll(d)
		delete(tempDirs.m, d)
	}
}

// ensureEdgeproxy returns an absolute path to the edgeproxy binary, building
// it from ./cmd/edgeproxy in the module root if it does not exist yet.
func ensureEdgeproxy(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err == nil {
		return abs, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("%s not found and cannot build it: %v", p, err)
	}
	if !filepath.IsAbs(p) {
		// A relative default such as bin/edgeproxy is relative to the module root
		// when the harness is started from elsewhere.
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return filepath.Join(root, p), nil
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %s missing, running `go build -o %s ./cmd/edgeproxy` in %s\n", p, abs, root)
	cmd := exec.Command("go", "build", "-o", abs, "./cmd/edgeproxy")
	cmd.Dir = root
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building edgeproxy failed: %v (use -b-nginx to test the harness without it)", err)
	}
	return abs, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// loadAvg returns the 1-minute load average (0 if unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscanf(string(b), "%f", &l)
	return l
}

// clkTck returns the kernel clock-tick rate used by /proc/PID/stat.
func clkTck() int {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%d", &n); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// raiseNofile lifts RLIMIT_NOFILE so the idle client can hold its
// connections (and children inherit a limit large enough for them too).
func raiseNofile() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(65536)
	if lim.Cur >= want {
		return
	}
	// Root may raise the hard limit; others can only go up to it.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}); err == nil {
		return
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

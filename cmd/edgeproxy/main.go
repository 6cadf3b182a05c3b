// Command edgeproxy is an HTTP edge proxy that runs nginx configurations.
//
// Usage mirrors nginx: -c FILE, -p PREFIX, -g DIRECTIVES, -t, -T, -v, -V,
// -s SIGNAL, plus tuning flags (see -help).
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"edgeproxy/config"
	"edgeproxy/engine"
	"edgeproxy/pipeline"
	"edgeproxy/snapshot"
	"edgeproxy/tlsterm"
	"edgeproxy/tuning"
)

//go:embed default.conf
var defaultConf []byte

const name = "edgeproxy"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		confFile = fs.String("c", "", "configuration file (default: the built-in welcome site)")
		prefix   = fs.String("p", "", "prefix path: relative paths in the config resolve against it (default: the config file's directory)")
		globals  = fs.String("g", "", "global directives, as nginx's -g (e.g. \"worker_processes 2;\")")
		test     = fs.Bool("t", false, "test the configuration and exit")
		dump     = fs.Bool("T", false, "test the configuration, print it, and exit")
		version  = fs.Bool("v", false, "print the version and exit")
		verbose  = fs.Bool("V", false, "print the version and build settings and exit")
		sig      = fs.String("s", "", "send a signal to the running process: stop, quit, reopen, reload")
		cpuprof  = fs.String("cpuprofile", "", "write a Go CPU profile to this file until exit (for tuning)")
	)
	var tf tuning.Flags
	tf.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [-tTvV] [-s signal] [-p prefix] [-c file] [-g directives] [tuning flags]\n\nOptions:\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version || *verbose {
		fmt.Fprintf(stderr, "%s version: %s/%s (nginx-compatible 1.22)\n", name, name, pipeline.Version)
		if *verbose {
			fmt.Fprintf(stderr, "built with gnet/v2, fasthttp; configure arguments: none (Go binary)\n")
		}
		return 0
	}
	path := *confFile
	if path == "" {
		dir, err := os.MkdirTemp("", "edgeproxy-default-")
		if err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
			return 1
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "default.conf")
		if err := os.WriteFile(path, defaultConf, 0o644); err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
			return 1
		}
	}
	if !filepath.IsAbs(path) && *prefix != "" {
		path = filepath.Join(*prefix, path)
	}
	pfx := *prefix
	if pfx == "" {
		pfx = filepath.Dir(path)
	}
	cfg, err := config.Load(path, config.Options{Prefix: pfx, Globals: *globals})
	var snap *snapshot.Snapshot
	var notices []snapshot.Notice
	var vnotices []config.Notice
	if err == nil {
		vnotices, err = config.Validate(cfg)
	}
	if err == nil {
		snap, notices, err = snapshot.Compile(cfg, pfx)
	}
	if *sig != "" {
		return signalProcess(*sig, snap, stderr)
	}
	if *test || *dump {
		for _, n := range vnotices {
			fmt.Fprintf(stderr, "%s: [notice] %s in %s:%d\n", name, n.Msg, n.File, n.Line)
		}
		for _, n := range notices {
			fmt.Fprintf(stderr, "%s: [notice] %s\n", name, n)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
			fmt.Fprintf(stderr, "%s: configuration file %s test failed\n", name, path)
			return 1
		}
		fmt.Fprintf(stderr, "%s: the configuration file %s syntax is ok\n", name, path)
		fmt.Fprintf(stderr, "%s: configuration file %s test is successful\n", name, path)
		if *dump {
			_ = config.Dump(stdout, cfg)
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
		return 1
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	return serve(snap, &tf, stderr, func() (*snapshot.Snapshot, error) {
		cfg, err := config.Load(path, config.Options{Prefix: pfx, Globals: *globals})
		if err != nil {
			return nil, err
		}
		if _, err := config.Validate(cfg); err != nil {
			return nil, err
		}
		s, _, err := snapshot.Compile(cfg, pfx)
		return s, err
	})
}

// reloader parses and compiles the configuration again (SIGHUP).
type reloader func() (*snapshot.Snapshot, error)

func serve(snap *snapshot.Snapshot, tf *tuning.Flags, stderr io.Writer, reload reloader) int {
	opt := tf.EngineOptions()
	loops := opt.Loops
	if loops <= 0 {
		loops = snap.Loops
	}
	if err := tf.Apply(loops, snap.RlimitNofile); err != nil {
		fmt.Fprintf(stderr, "%s: [alert] %v\n", name, err)
	}
	e := engine.New(snap, opt)
	if err := e.Check(); err != nil {
		fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
		return 1
	}
	if snap.PidFile != "" {
		if err := os.WriteFile(snap.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] open() %q failed (%v)\n", name, snap.PidFile, err)
			return 1
		}
		defer os.Remove(snap.PidFile)
	}
	ts := tlsterm.New(snap, e.Source())
	if err := ts.Start(); err != nil {
		fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
		return 1
	}
	defer ts.Stop()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1)
	errc := make(chan error, 1)
	if len(e.Addrs()) > 0 {
		go func() { errc <- e.Run() }()
	}
	for {
		select {
		case err := <-errc:
			snap.Logs.Close()
			if err != nil {
				fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
				return 1
			}
			return 0
		case s := <-sigs:
			switch s {
			case syscall.SIGUSR1:
				// logrotate: reopen the access logs (nginx -s reopen).
				if err := snap.Logs.Reopen(); err != nil {
					fmt.Fprintf(stderr, "%s: [alert] reopening logs: %v\n", name, err)
				}
				continue
			case syscall.SIGHUP:
				// Reload: a config that fails to parse or compile is
				// reported in -t form and the old one keeps serving;
				// otherwise the snapshot is swapped atomically and each
				// connection switches at its next request.
				next, err := reload()
				if err == nil && !snapshot.SameListeners(snap, next) {
					err = fmt.Errorf("the listening sockets changed: restart edgeproxy (or start a new one beside it with reuseport) to apply them")
				}
				if err != nil {
					fmt.Fprintf(stderr, "%s: [emerg] %v\n%s: [notice] reload failed, still serving the previous configuration\n", name, err, name)
					continue
				}
				e.Source().Store(next)
				fmt.Fprintf(stderr, "%s: [notice] configuration reloaded\n", name)
				continue
			}
			if s == syscall.SIGQUIT {
				// Graceful stop: finish what is in flight first
				// (worker_shutdown_timeout, default 60 s here; nginx
				// waits without limit when it is unset).
				timeout := snap.ShutdownTimeout
				if timeout <= 0 {
					timeout = 60 * time.Second
				}
				e.Drain(timeout)
			}
			if len(e.Addrs()) > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = e.Stop(ctx)
				cancel()
				<-errc
			}
			snap.Logs.Close()
			return 0
		}
	}
}

// signalProcess implements -s by signalling the pid in the pid file, as
// nginx does.
func signalProcess(s string, snap *snapshot.Snapshot, stderr io.Writer) int {
	sigs := map[string]syscall.Signal{"stop": syscall.SIGTERM, "quit": syscall.SIGQUIT, "reopen": syscall.SIGUSR1, "reload": syscall.SIGHUP}
	sg, ok := sigs[s]
	if !ok {
		fmt.Fprintf(stderr, "%s: invalid option: \"-s %s\"\n", name, s)
		return 1
	}
	if snap == nil || snap.PidFile == "" {
		fmt.Fprintf(stderr, "%s: [error] no \"pid\" file in the configuration to signal\n", name)
		return 1
	}
	b, err := os.ReadFile(snap.PidFile)
	if err != nil {
		fmt.Fprintf(stderr, "%s: [error] open() %q failed (%v)\n", name, snap.PidFile, err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "%s: [error] invalid PID number %q in %q\n", name, strings.TrimSpace(string(b)), snap.PidFile)
		return 1
	}
	if err := syscall.Kill(pid, sg); err != nil {
		fmt.Fprintf(stderr, "%s: [error] kill(%d, %d) failed (%v)\n", name, pid, sg, err)
		return 1
	}
	return 0
}

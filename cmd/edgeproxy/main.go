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
	if len(args) > 0 && args[0] == "tune" {
		return runTune(args[1:], stdout, stderr)
	}
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
		check    = fs.Bool("check-host", false, "check the kernel settings for this configuration and print sysctl lines to change (same as the tune subcommand)")
	)
	var tf tuning.Flags
	tf.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [-tTvV] [-s signal] [-p prefix] [-c file] [-g directives] [tuning flags]\n       %s tune [-root dir] [-c file]\n\nOptions:\n", name, name)
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
	if *check {
		if err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
			return 1
		}
		tuning.Report(stdout, "/", tuning.Check("/", needs(snap, tf.Loops)))
		return 0
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
	if snap.RlimitNofile == 0 {
		// Without worker_rlimit_nofile, make room for worker_connections
		// (within the hard limit; Go already raises the soft one to it).
		if got, _ := tuning.RaiseNofile(tuning.NofileWanted(0, snap.WorkerConnections, loops)); got < snap.WorkerConnections*loops {
			fmt.Fprintf(stderr, "%s: [warn] %d worker_connections exceed open file resource limit: %d\n", name, snap.WorkerConnections*loops, got)
		}
	}
	aff, err := tuning.CPUSets(snap.CPUAffinity, loops)
	if err != nil {
		fmt.Fprintf(stderr, "%s: [alert] worker_cpu_affinity: %v\n", name, err)
	}
	opt.CPUAffinity = aff
	// Listening sockets handed over by the old binary (binary upgrade).
	upgraded := os.Getenv(inheritEnv) != ""
	inherited := inheritedSockets(stderr)
	opt.Inherited = inherited
	e := engine.New(snap, opt)
	if err := e.Check(); err != nil {
		fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
		return 1
	}
	pid := newPidFile(snap.PidFile)
	if err := pid.write(); err != nil {
		fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
		return 1
	}
	defer pid.remove()
	ts := tlsterm.New(snap, e.Source())
	ts.Listen = inheritedListen(inherited)
	if err := ts.Start(); err != nil {
		fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
		return 1
	}
	defer ts.Stop()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	errc := make(chan error, 1)
	go func() { errc <- e.Run() }()
	select {
	case <-e.Ready():
	case err := <-errc:
		fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
		return 1
	}
	for _, fd := range inherited {
		syscall.Close(fd) // sockets the new configuration no longer listens on
	}
	if upgraded {
		// Started by USR2: become the unit's main process for systemd.
		sdNotify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=serving (upgraded binary)", os.Getpid()))
	} else {
		sdNotify("READY=1\nSTATUS=serving")
	}
	var up *upgrade
	for {
		var childExit <-chan error
		if up != nil {
			childExit = up.exited
		}
		select {
		case err := <-childExit:
			// The new binary exited while this one still serves: take the
			// pid file back, as nginx does.
			fmt.Fprintf(stderr, "%s: [alert] the new binary (pid %d) exited (%v); the old one keeps serving\n", name, up.pid, err)
			pid.restore()
			sdNotify(fmt.Sprintf("MAINPID=%d\nSTATUS=serving (the new binary failed)", os.Getpid()))
			up = nil
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
				// Reload: a config that fails to parse or compile (or
				// whose new listeners cannot be bound) is reported in -t
				// form and the old one keeps serving; otherwise listeners
				// it adds open, the snapshot is swapped atomically (each
				// connection switches at its next request), and
				// listeners it drops stop accepting and drain.
				sdNotify("RELOADING=1")
				prev := e.Source().Load()
				next, err := reload()
				if err == nil && switchesTLS(prev, next) {
					err = fmt.Errorf("a listening socket cannot switch between plain and ssl on reload: restart edgeproxy (or upgrade it in place with USR2)")
				}
				var commitTLS func(time.Duration)
				var abortTLS func()
				if err == nil {
					commitTLS, abortTLS, err = ts.Prepare(next)
				}
				if err == nil {
					if err = e.Update(next, shutdownTimeout(next)); err != nil {
						abortTLS()
					} else {
						commitTLS(shutdownTimeout(next))
					}
				}
				if err != nil {
					sdNotify("READY=1\nSTATUS=reload failed, serving the previous configuration")
					fmt.Fprintf(stderr, "%s: [emerg] %v\n%s: [notice] reload failed, still serving the previous configuration\n", name, err, name)
					continue
				}
				for _, w := range keptOptionChanges(prev, next) {
					fmt.Fprintf(stderr, "%s: [warn] %s\n", name, w)
				}
				sdNotify("READY=1\nSTATUS=serving")
				fmt.Fprintf(stderr, "%s: [notice] configuration reloaded\n", name)
				continue
			case syscall.SIGUSR2:
				// Binary upgrade (nginx's USR2): start the binary on disk
				// with the listening sockets inherited; QUIT this one
				// when the new one serves.
				if up != nil {
					fmt.Fprintf(stderr, "%s: [alert] the changing binary signal is ignored: you should shutdown or terminate before either old or new binary's process\n", name)
					continue
				}
				nu, err := startUpgrade(e, ts, pid)
				if err != nil {
					fmt.Fprintf(stderr, "%s: [alert] binary upgrade failed: %v\n", name, err)
					continue
				}
				up = nu
				fmt.Fprintf(stderr, "%s: [notice] started the new binary, pid %d\n", name, up.pid)
				continue
			}
			if up == nil {
				// (After a USR2 the new binary is the unit's main
				// process: its service is not stopping.)
				sdNotify("STOPPING=1")
			}
			if s == syscall.SIGQUIT {
				// Graceful stop: stop accepting, finish what is in
				// flight (worker_shutdown_timeout, default 60 s here;
				// nginx waits without limit when it is unset).
				ts.CloseListeners()
				timeout := shutdownTimeout(e.Source().Load())
				tlsDone := make(chan struct{})
				go func() { ts.Drain(timeout); close(tlsDone) }()
				e.Drain(timeout)
				<-tlsDone
			}
			if up != nil {
				// The new binary serves on the same sockets: exit
				// without gnet's shutdown, which would unlink the unix
				// socket paths the new process listens on (what is left
				// after the drain, or everything on TERM, is closed by
				// the exit).
				snap.Logs.Close()
				return 0
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = e.Stop(ctx)
			cancel()
			<-errc
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

package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"edgeproxy/config"
	"edgeproxy/snapshot"
	"edgeproxy/tuning"
)

// runTune is "edgeproxy tune": read the kernel settings that matter for an
// edge proxy and print the sysctl lines to change, with reasons. With -c,
// the configuration's connection count, backlogs and reuseport are taken
// into account. -root reads another /proc and /sys tree (tests, or a host's
// files copied elsewhere).
func runTune(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name+" tune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "/", "directory holding the proc/ and sys/ trees to read")
	confFile := fs.String("c", "", "configuration file whose needs to check (default: 1024 connections)")
	globals := fs.String("g", "", "global directives, as nginx's -g")
	loops := fs.Int("loops", 0, "event loops (0: worker_processes from the config)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	var snap *snapshot.Snapshot
	if *confFile != "" {
		cfg, err := config.Load(*confFile, config.Options{Prefix: filepath.Dir(*confFile), Globals: *globals})
		if err == nil {
			_, err = config.Validate(cfg)
		}
		if err == nil {
			snap, _, err = snapshot.Compile(cfg, filepath.Dir(*confFile))
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: [emerg] %v\n", name, err)
			return 1
		}
	}
	tuning.Report(stdout, *root, tuning.Check(*root, needs(snap, *loops)))
	return 0
}

// needs is what a configuration asks of the host.
func needs(snap *snapshot.Snapshot, loops int) tuning.Needs {
	n := tuning.Needs{Connections: 1024, CPUs: tuning.CPUCount()}
	if snap == nil {
		return n
	}
	if loops <= 0 {
		loops = snap.Loops
	}
	n.Connections = snap.WorkerConnections * loops
	for _, l := range snap.Listeners {
		if l.Backlog > n.Backlog {
			n.Backlog = l.Backlog
		}
		n.ReusePort = n.ReusePort || l.ReusePort
	}
	return n
}

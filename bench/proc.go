package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process started by the harness. Every child runs in its
// own process group (so nginx's master and workers can be signalled
// together) and is recorded in a registry that killAll empties on exit,
// panic or signal. Pdeathsig covers the case where the harness itself is
// killed with SIGKILL.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	once    sync.Once
}

var registry = struct {
	sync.Mutex
	procs  map[*proc]struct{}
	closed bool // set by shutdown: no new children
}{procs: map[*proc]struct{}{}}

// startProc starts argv as a registered child in its own process group.
// With nice != 0 the child instead gets its own session, and thus its own
// scheduler autogroup, whose nice value is set to nice: with
// kernel.sched_autogroup_enabled=1 plain `nice` only weighs a task against
// tasks of the same session, not against other sessions' builds and tests.
func startProc(name string, argv []string, dir string, stdout, stderr io.Writer, deathSig syscall.Signal, nice int) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
	if nice != 0 {
		// A session leader is also a process-group leader (pgid = pid).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: deathSig}
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.closed {
		return nil, fmt.Errorf("start %s: harness is shutting down", name)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	registry.procs[p] = struct{}{}
	if nice != 0 {
		ag := fmt.Sprintf("/proc/%d/autogroup", cmd.Process.Pid)
		if _, err := os.Stat(ag); err == nil {
			if err := os.WriteFile(ag, []byte(strconv.Itoa(nice)), 0); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s: set autogroup nice: %v\n", name, err)
			}
		}
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group (nginx: fast shutdown of master
// and workers), waits up to grace, then SIGKILLs the group and waits. It is
// idempotent.
func (p *proc) stop(grace time.Duration) {
	p.once.Do(func() { p.doStop(grace) })
}

func (p *proc) doStop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			fmt.Fprintf(os.Stderr, "bench: %s (pid %d) did not exit within %v of SIGTERM, killing\n", p.name, pgid, grace)
		}
	}
	// Leftover group members (e.g. workers of a master that died) and a
	// leader that ignored SIGTERM.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(os.Stderr, "bench: %s (pid %d) still not reaped after SIGKILL\n", p.name, pgid)
	}
	registry.Lock()
	delete(registry.procs, p)
	registry.Unlock()
}

// shutdown forbids new children and stops the running ones.
func shutdown() {
	registry.Lock()
	registry.closed = true
	registry.Unlock()
	killAll()
}

// killAll stops every child still registered. Safe to call repeatedly and
// concurrently (a signal handler and a deferred call may race).
func killAll() {
	registry.Lock()
	ps := make([]*proc, 0, len(registry.procs))
	for p := range registry.procs {
		ps = append(ps, p)
	}
	registry.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(3 * time.Second)
		}()
	}
	wg.Wait()
}

// ---- /proc parsing ------------------------------------------------------

// procStat holds the fields of /proc/PID/stat the harness needs.
type procStat struct {
	pid   int
	comm  string
	state byte
	ppid  int
	utime uint64 // clock ticks
	stime uint64 // clock ticks
}

// parseProcStat parses one /proc/PID/stat line. comm may contain spaces and
// parentheses, so the fields are split after the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	var s procStat
	open := bytes.IndexByte(b, '(')
	closeIdx := bytes.LastIndexByte(b, ')')
	if open < 0 || closeIdx < open {
		return s, errors.New("stat: no (comm)")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return s, fmt.Errorf("stat: pid: %v", err)
	}
	s.pid = pid
	s.comm = string(b[open+1 : closeIdx])
	rest := strings.Fields(string(b[closeIdx+1:]))
	// rest[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(rest) < 13 {
		return s, fmt.Errorf("stat: only %d fields after comm", len(rest))
	}
	s.state = rest[0][0]
	if s.ppid, err = strconv.Atoi(rest[1]); err != nil {
		return s, fmt.Errorf("stat: ppid: %v", err)
	}
	if s.utime, err = strconv.ParseUint(rest[11], 10, 64); err != nil {
		return s, fmt.Errorf("stat: utime: %v", err)
	}
	if s.stime, err = strconv.ParseUint(rest[12], 10, 64); err != nil {
		return s, fmt.Errorf("stat: stime: %v", err)
	}
	return s, nil
}

// parseStatusKB returns the value in kB of a "Key:   N kB" line of
// /proc/PID/status (e.g. VmRSS, VmHWM). Missing keys (zombies, kernel
// threads) yield 0 with ok=false.
func parseStatusKB(b []byte, key string) (kb uint64, ok bool) {
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, found := strings.Cut(line, ":")
		if !found || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// treePIDs returns root and all its descendants, found by scanning the ppid
// field of every /proc/PID/stat (this kernel has no task/*/children).
func treePIDs(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st, err := parseProcStat(b)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeUsage is the summed CPU time and RSS of a process tree.
type treeUsage struct {
	ticks uint64 // utime+stime, clock ticks
	rssKB uint64
	procs int
}

func readTreeUsage(root int) treeUsage {
	var u treeUsage
	for _, pid := range treePIDs(root) {
		p := "/proc/" + strconv.Itoa(pid)
		b, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		st, err := parseProcStat(b)
		if err != nil {
			continue
		}
		u.ticks += st.utime + st.stime
		u.procs++
		if sb, err := os.ReadFile(p + "/status"); err == nil {
			if kb, ok := parseStatusKB(sb, "VmRSS"); ok {
				u.rssKB += kb
			}
		}
	}
	return u
}

// rssSampler polls the tree's summed VmRSS every interval and keeps the
// maximum (the tree's peak RSS; per-process VmHWM cannot be summed into a
// tree peak because the processes peak at different times).
type rssSampler struct {
	stop   chan struct{}
	done   chan struct{}
	peakKB uint64
}

func startRSSSampler(root int, interval time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if u := readTreeUsage(root); u.rssKB > s.peakKB {
				s.peakKB = u.rssKB
			}
			select {
			case <-s.stop:
				if u := readTreeUsage(root); u.rssKB > s.peakKB {
					s.peakKB = u.rssKB
				}
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops the sampler (after one last sample) and returns the peak.
func (s *rssSampler) finish() uint64 {
	close(s.stop)
	<-s.done
	return s.peakKB
}

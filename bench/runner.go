package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type benchEnv struct {
	o      *options
	a, b   serverSide
	clkTck int
	pin    bool
}

// runResult is one measured run of one server.
type runResult struct {
	err string // non-empty: the run failed

	requests    int64
	rps         float64
	p50Us       float64
	p99Us       float64
	mbps        float64
	cpuUsPerReq float64 // server tree CPU µs per request (per connection for idle)
	cpuUsPerMB  float64 // server tree CPU µs per MB read by wrk (throughput scenarios)
	cpuShare    float64 // server tree CPU seconds per wall second during the run
	peakRSSKB   uint64  // peak summed VmRSS of the server tree
	non2xx      int64
	sockErrs    int64

	quietP99 float64 // attack scenarios: p99 of the same load without the attack

	// idle scenario
	idleConns  int
	baseRSSKB  uint64
	idleRSSKB  uint64
	kibPerConn float64
}

type scenarioResult struct {
	sc      scenario
	skipped string
	a, b    []runResult // per round, index = round
	notes   []string
}

func (e *benchEnv) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "   "+format+"\n", args...)
}

func (e *benchEnv) runScenario(sc scenario) (res scenarioResult) {
	res.sc = sc
	tmp, err := prepareDir(sc)
	if tmp != "" && !e.o.keep {
		trackTempDir(tmp, true)
		defer func() {
			killAll() // nothing of this scenario may still use the dir
			os.RemoveAll(tmp)
			trackTempDir(tmp, false)
		}()
	}
	if err != nil {
		res.skipped = "setup: " + err.Error()
		return res
	}
	if e.o.keep {
		e.logf("temp dir: %s", tmp)
	}
	port, err := freePort()
	if err != nil {
		res.skipped = "no free port: " + err.Error()
		return res
	}
	data := templateData{Port: port, Tmp: tmp, DocRoot: filepath.Join(tmp, "docroot")}
	if sc.backend {
		start := startBackend
		if sc.gunicorn {
			start = startGunicorn
		}
		bp, bport, err := start(tmp, e.o.nice)
		if err != nil {
			res.skipped = "backend: " + err.Error()
			return res
		}
		defer bp.stop(2 * time.Second)
		data.BackendPort = bport
	}
	if sc.redis {
		rp, rport, err := startRedis(tmp, e.o.nice)
		if err != nil {
			res.skipped = "redis: " + err.Error()
			return res
		}
		defer rp.stop(2 * time.Second)
		data.RedisPort = rport
	}
	conf, err := renderConf(sc.conf, data)
	if err != nil {
		res.skipped = "template: " + err.Error()
		return res
	}
	if err := os.WriteFile(filepath.Join(tmp, "nginx.conf"), conf, 0o644); err != nil {
		res.skipped = err.Error()
		return res
	}
	sides, dirs := [2]serverSide{e.a, e.b}, [2]string{tmp, tmp}
	if sc.offConf != "" {
		// One server, two configs: B gets its own prefix with offConf.
		on, off := e.a, e.a
		if sc.self == kindNginx {
			on, off = e.b, e.b
		}
		on.label, off.label = on.label+"+on", off.label+"-off"
		on.pidName, off.pidName = "on.pid", "off.pid"
		sides = [2]serverSide{on, off}
		tmpB, err := prepareDir(sc)
		if tmpB != "" && !e.o.keep {
			trackTempDir(tmpB, true)
			defer func() {
				killAll()
				os.RemoveAll(tmpB)
				trackTempDir(tmpB, false)
			}()
		}
		if err != nil {
			res.skipped = "setup: " + err.Error()
			return res
		}
		data.Tmp, data.DocRoot = tmpB, filepath.Join(tmpB, "docroot")
		confB, err := renderConf(sc.offConf, data)
		if err == nil {
			err = os.WriteFile(filepath.Join(tmpB, "nginx.conf"), confB, 0o644)
		}
		if err != nil {
			res.skipped = "template: " + err.Error()
			return res
		}
		dirs[1] = tmpB
	}
	// Same bytes for both servers; check both accept them before measuring.
	for i, s := range sides {
		if err := s.configTest(dirs[i]); err != nil {
			res.skipped = err.Error()
			return res
		}
	}

	for round := 0; round < e.o.rounds; round++ {
		// A B, B A, A B, ...: each side runs first in half of the rounds, and
		// the two runs of a round are adjacent in time, so slow drift of the
		// machine affects both sides of a round alike.
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		var pair [2]runResult
		for _, i := range order {
			side := sides[i]
			var r runResult
			if sc.kind == loadIdle {
				r = e.runIdle(sc, side, dirs[i], port)
			} else {
				r = e.runWrkLoad(sc, side, dirs[i], port)
			}
			pair[i] = r
			e.logRun(round, side, sc, r)
		}
		res.a = append(res.a, pair[0])
		res.b = append(res.b, pair[1])
	}
	return res
}

func (e *benchEnv) logRun(round int, side serverSide, sc scenario, r runResult) {
	if r.err != "" {
		e.logf("round %d %-9s FAILED: %s", round+1, side.label, r.err)
		return
	}
	if sc.kind == loadIdle {
		e.logf("round %d %-9s conns=%d rss=%.1fMiB (base %.1fMiB, %.2f KiB/conn) cpu=%.1fµs/conn",
			round+1, side.label, r.idleConns, kib2mib(r.idleRSSKB), kib2mib(r.baseRSSKB), r.kibPerConn, r.cpuUsPerReq)
		return
	}
	extra := ""
	if sc.throughput {
		extra = fmt.Sprintf(" %.0fMB/s cpu=%.0fµs/MB", r.mbps, r.cpuUsPerMB)
	}
	if r.non2xx > 0 || r.sockErrs > 0 {
		extra += fmt.Sprintf(" non2xx=%d sockerr=%d", r.non2xx, r.sockErrs)
	}
	e.logf("round %d %-9s %10.0f req/s p50=%.0fµs p99=%.0fµs cpu=%.2fµs/req (%.0f%% of a core) rss=%.1fMiB%s",
		round+1, side.label, r.rps, r.p50Us, r.p99Us, r.cpuUsPerReq, 100*r.cpuShare, kib2mib(r.peakRSSKB), extra)
}

// runWrkLoad: start server, wait for the port, warm up, measure one wrk run
// with CPU (utime+stime delta of the server tree) and peak RSS, stop.
func (e *benchEnv) runWrkLoad(sc scenario, side serverSide, tmp string, port int) runResult {
	p, err := side.start(tmp, port, e.pin, e.o.nice)
	if err != nil {
		return runResult{err: err.Error()}
	}
	defer p.stop(5 * time.Second)
	rss := startRSSSampler(p.pid(), 100*time.Millisecond)
	conns := e.o.connections
	if sc.connections > 0 {
		conns = sc.connections
	}
	scheme := "http://"
	if sc.tls != "" {
		scheme = "https://"
	}
	url := scheme + "127.0.0.1:" + strconv.Itoa(port) + sc.path
	lua := filepath.Join(tmp, "done.lua")
	load := func(d time.Duration) (wrkResult, string, error) {
		return e.runWrk(url, conns, d, lua, sc.wrkHeaders()...)
	}
	if e.o.warmup > 0 {
		if _, raw, err := load(e.o.warmup); err != nil {
			rss.finish()
			return runResult{err: "warm-up: " + err.Error() + " " + raw}
		}
	}
	var quietP99 float64
	if sc.attack != "" {
		// The same load without the attack first: the figure to compare.
		q, raw, err := e.runWrk(url, conns, e.o.duration, lua, sc.wrkHeaders()...)
		if err != nil {
			rss.finish()
			return runResult{err: "quiet run: " + err.Error() + " " + raw}
		}
		quietP99 = q.p99Us
		n := 10000 // the hardening issue's figure, for both attacks
		at := startAttack(sc.attack, "127.0.0.1:"+strconv.Itoa(port), sc.attackPath, n)
		defer at.finish()
		time.Sleep(3 * time.Second) // let the attackers connect
	}
	before := readTreeUsage(p.pid())
	t0 := time.Now()
	w, raw, err := load(e.o.duration)
	wall := time.Since(t0)
	after := readTreeUsage(p.pid())
	peak := rss.finish()
	if e.o.verbose {
		fmt.Fprintf(os.Stderr, "%s\n", raw)
	}
	if err != nil {
		return runResult{err: err.Error()}
	}
	if p.exited() {
		return runResult{err: fmt.Sprintf("server exited during the run (%v): %s", p.waitErr, tailFile(filepath.Join(tmp, "error.log"), 500))}
	}
	r := runResult{
		quietP99:  quietP99,
		requests:  w.requests,
		rps:       w.rps,
		p50Us:     w.p50Us,
		p99Us:     w.p99Us,
		mbps:      w.mbps(),
		peakRSSKB: peak,
		non2xx:    w.non2xx,
		sockErrs:  w.socketErrors(),
	}
	if after.ticks >= before.ticks {
		r.cpuShare = float64(after.ticks-before.ticks) / float64(e.clkTck) / wall.Seconds()
	}
	if w.bytes > 0 && after.ticks >= before.ticks {
		// wrk counts bytes of unfinished responses too, so per-MB CPU is not
		// skewed by the few huge responses still in flight at the end.
		r.cpuUsPerMB = float64(after.ticks-before.ticks) * 1e6 / float64(e.clkTck) / (float64(w.bytes) / 1e6)
	}
	if w.requests > 0 && after.ticks >= before.ticks {
		r.cpuUsPerReq = float64(after.ticks-before.ticks) * 1e6 / float64(e.clkTck) / float64(w.requests)
	}
	if w.requests == 0 {
		r.err = fmt.Sprintf("no requests completed (socket errors: connect %d, read %d, write %d, timeout %d)", w.errConnect, w.errRead, w.errWrite, w.errTimeout)
	} else if w.non2xx*100 > w.requests && !sc.anyStatus {
		r.err = fmt.Sprintf("%d of %d responses were not 2xx/3xx", w.non2xx, w.requests)
	}
	return r
}

// runIdle: start server, note its base RSS, open n idle keep-alive
// connections (one GET each, response read, then left open), let it settle,
// measure the tree's RSS, stop the server, close the connections.
func (e *benchEnv) runIdle(sc scenario, side serverSide, tmp string, port int) runResult {
	p, err := side.start(tmp, port, e.pin, e.o.nice)
	if err != nil {
		return runResult{err: err.Error()}
	}
	defer p.stop(10 * time.Second)
	time.Sleep(300 * time.Millisecond)
	base := readTreeUsage(p.pid())
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conns, openErr := openIdleConns(addr, sc.path, e.o.idleConns, e.o.idleTimeout)
	defer func() {
		// Stop the server first (its side closes; no client TIME_WAIT pile-up).
		p.stop(10 * time.Second)
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(time.Second) // let lazily-freed buffers settle
	var peak uint64
	var last treeUsage
	for range 5 {
		last = readTreeUsage(p.pid())
		peak = max(peak, last.rssKB)
		time.Sleep(100 * time.Millisecond)
	}
	r := runResult{idleConns: len(conns), baseRSSKB: base.rssKB, idleRSSKB: peak, peakRSSKB: peak}
	if len(conns) > 0 {
		r.cpuUsPerReq = float64(last.ticks-base.ticks) * 1e6 / float64(e.clkTck) / float64(len(conns))
		if peak > base.rssKB {
			r.kibPerConn = float64(peak-base.rssKB) / float64(len(conns))
		}
	}
	if p.exited() {
		r.err = fmt.Sprintf("server exited (%v)", p.waitErr)
	} else if openErr != nil {
		r.err = fmt.Sprintf("only %d/%d connections: %v", len(conns), e.o.idleConns, openErr)
	}
	return r
}

// openIdleConns opens n keep-alive connections to addr, each sending one
// GET and reading the full response, and returns them still open. Bounded
// by timeout overall and 10 s per connection; stops at the first errors.
func openIdleConns(addr, path string, n int, timeout time.Duration) ([]net.Conn, error) {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: edgeproxy-bench\r\n\r\n")
	deadline := time.Now().Add(timeout)
	var (
		mu       sync.Mutex
		conns    = make([]net.Conn, 0, n)
		firstErr error
		failed   atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	one := func() error {
		d := net.Dialer{Timeout: 10 * time.Second, Deadline: deadline}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		_ = c.SetDeadline(minTime(deadline, time.Now().Add(10*time.Second)))
		if _, err := c.Write(req); err != nil {
			c.Close()
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
		if err != nil {
			c.Close()
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Close {
			c.Close()
			return fmt.Errorf("bad response: status %d close=%v err=%v", resp.StatusCode, resp.Close, err)
		}
		_ = c.SetDeadline(time.Time{})
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return nil
	}
	const workers = 128
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) && failed.Load() < 10 {
				if err := one(); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(conns) < n && firstErr == nil {
		firstErr = fmt.Errorf("timed out after %v", timeout)
	}
	return conns, firstErr
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func kib2mib(kb uint64) float64 { return float64(kb) / 1024 }

package main

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"time"
)

// median of the finite values; NaN when there are none.
func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// metric extracts one number from a run.
type metric func(runResult) float64

var (
	mRPS  metric = func(r runResult) float64 { return r.rps }
	mP50  metric = func(r runResult) float64 { return r.p50Us }
	mP99  metric = func(r runResult) float64 { return r.p99Us }
	mCPU  metric = func(r runResult) float64 { return r.cpuUsPerReq }
	mRSS  metric = func(r runResult) float64 { return kib2mib(r.peakRSSKB) }
	mMBps metric = func(r runResult) float64 { return r.mbps }
	mKiBC metric = func(r runResult) float64 { return r.kibPerConn }
	mShr  metric = func(r runResult) float64 { return 100 * r.cpuShare }
	mCPUB metric = func(r runResult) float64 { return r.cpuUsPerMB }
)

// roundRatios returns A/B of m for every round in which both runs succeeded.
func (s scenarioResult) roundRatios(m metric) []float64 {
	var out []float64
	for i := range min(len(s.a), len(s.b)) {
		if s.a[i].err != "" || s.b[i].err != "" {
			continue
		}
		out = append(out, ratio(m(s.a[i]), m(s.b[i])))
	}
	return out
}

// sideMedian is the median of m over the successful runs of one side.
func sideMedian(runs []runResult, m metric) float64 {
	var v []float64
	for _, r := range runs {
		if r.err == "" {
			v = append(v, m(r))
		}
	}
	return median(v)
}

func fmtNum(x float64, prec int) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

func fmtRatio(x float64) string { return fmtNum(x, 2) }

func fmtPair(a, b float64, prec int) string {
	return fmtNum(a, prec) + " / " + fmtNum(b, prec)
}

func fmtList(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmtRatio(x))
	}
	return strings.Join(s, " ")
}

// renderTable renders the markdown report.
func renderTable(e *benchEnv, results []scenarioResult) string {
	var b strings.Builder
	al, bl := e.a.label, e.b.label
	fmt.Fprintf(&b, "## %s vs %s (%s)\n\n", al, bl, time.Now().Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "%d rounds (interleaved A B, B A, ...), %v per run after a %v warm-up, wrk -t%d -c%d (static64m: -c4), ", e.o.rounds, e.o.duration, e.o.warmup, e.o.threads, e.o.connections)
	if e.pin {
		b.WriteString("server pinned to CPU 0, wrk to CPU 1")
	} else {
		b.WriteString("no CPU pinning")
	}
	if e.o.nice != 0 {
		fmt.Fprintf(&b, ", nice %d", e.o.nice)
	}
	fmt.Fprintf(&b, ", %s/%s. Ratios are %s/%s, median of the per-round ratios; the raw columns are each side's median.\n\n", runtime.GOOS, runtime.GOARCH, al, bl)

	fmt.Fprintf(&b, "| scenario | %s req/s | %s req/s | req/s ratio | p50 ratio | p99 ratio | CPU µs/req (e/n) | CPU ratio | RSS MiB (e/n) | RSS ratio | MB/s (e/n) |\n", al, bl)
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var notes []string
	for _, s := range results {
		name := s.sc.name
		if s.skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped | | | | | | | | | |\n", name)
			notes = append(notes, fmt.Sprintf("**%s** skipped: %s", name, oneLine(s.skipped, 600)))
			continue
		}
		ok := len(s.roundRatios(mRSS))
		for i, r := range s.a {
			if r.err != "" {
				notes = append(notes, fmt.Sprintf("**%s** round %d %s failed: %s", name, i+1, al, oneLine(r.err, 300)))
			}
		}
		for i, r := range s.b {
			if r.err != "" {
				notes = append(notes, fmt.Sprintf("**%s** round %d %s failed: %s", name, i+1, bl, oneLine(r.err, 300)))
			}
		}
		if s.sc.kind == loadIdle {
			fmt.Fprintf(&b, "| %s | – | – | – | – | – | %s µs/conn | %s | %s | %s | – |\n", name,
				fmtPair(sideMedian(s.a, mCPU), sideMedian(s.b, mCPU), 1), fmtRatio(median(s.roundRatios(mCPU))),
				fmtPair(sideMedian(s.a, mRSS), sideMedian(s.b, mRSS), 1), fmtRatio(median(s.roundRatios(mRSS))))
			notes = append(notes, fmt.Sprintf("**%s**: %d idle connections; RSS is the server tree with all of them open; growth per connection %s KiB (e/n), ratio %s; per-round RSS ratios %s",
				name, e.o.idleConns, fmtPair(sideMedian(s.a, mKiBC), sideMedian(s.b, mKiBC), 2),
				fmtRatio(median(s.roundRatios(mKiBC))), fmtList(s.roundRatios(mRSS))))
			continue
		}
		mb := "–"
		cpu, cpuUnit := mCPU, ""
		if s.sc.throughput {
			mb = fmtPair(sideMedian(s.a, mMBps), sideMedian(s.b, mMBps), 0)
			// Few, huge responses: CPU per MB is exact, per request is not
			// (responses still in flight at the end cost CPU but do not count).
			cpu, cpuUnit = mCPUB, " µs/MB"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name,
			fmtNum(sideMedian(s.a, mRPS), 0), fmtNum(sideMedian(s.b, mRPS), 0),
			fmtRatio(median(s.roundRatios(mRPS))), fmtRatio(median(s.roundRatios(mP50))), fmtRatio(median(s.roundRatios(mP99))),
			fmtPair(sideMedian(s.a, cpu), sideMedian(s.b, cpu), 2)+cpuUnit, fmtRatio(median(s.roundRatios(cpu))),
			fmtPair(sideMedian(s.a, mRSS), sideMedian(s.b, mRSS), 1), fmtRatio(median(s.roundRatios(mRSS))), mb)
		if ok > 0 && s.sc.attack != "" {
			att := func(r runResult) float64 { return ratio(r.p99Us, r.quietP99) }
			notes = append(notes, fmt.Sprintf("**%s** p99 under attack / p99 quiet (target ≤ 2): %s (e/n)", name,
				fmtPair(sideMedian(s.a, att), sideMedian(s.b, att), 2)))
		}
		if s.sc.offConf != "" && ok > 0 {
			notes = append(notes, fmt.Sprintf("**%s**: one server, on/off (%s): the raw columns are on / off, not %s / %s; cost = 1 − req/s ratio = %s %% of req/s, %s %% more CPU per request",
				name, s.sc.desc, al, bl, fmtNum(100*(1-median(s.roundRatios(mRPS))), 1), fmtNum(100*(median(s.roundRatios(mCPU))-1), 1)))
		}
		if ok > 0 {
			notes = append(notes, fmt.Sprintf("**%s** per-round req/s ratios: %s; CPU ratios: %s; server CPU use %s %% of a core (e/n)", name,
				fmtList(s.roundRatios(mRPS)), fmtList(s.roundRatios(cpu)), fmtPair(sideMedian(s.a, mShr), sideMedian(s.b, mShr), 0)))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

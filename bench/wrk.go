package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// doneLua is passed to wrk with -s. Its done() hook prints the exact
// summary and latency percentiles (µs, from wrk's histogram) as
// "BENCH key=value ..." lines, which parseWrk prefers over the rounded
// human-readable --latency table.
const doneLua = `-- written by edgeproxy/bench
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH summary requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format("BENCH latency min_us=%d mean_us=%.2f stdev_us=%.2f max_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d\n",
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
`

// wrkResult is what one wrk run reports.
type wrkResult struct {
	requests   int64
	durationUs int64
	bytes      int64
	rps        float64 // requests per second

	errConnect, errRead, errWrite, errTimeout int64
	non2xx                                    int64 // "Non-2xx or 3xx responses" / errors.status

	meanUs, maxUs                float64
	p50Us, p75Us, p90Us, p99Us   float64
	p999Us                       float64
	fromLua                      bool // percentiles came from the done() script (exact µs)
	textP50Us, textP99Us         float64
	transferPerSec               float64 // bytes/s from "Transfer/sec"
	hasSummary, hasLatencyTables bool
}

func (w wrkResult) socketErrors() int64 {
	return w.errConnect + w.errRead + w.errWrite + w.errTimeout
}

// mbps is the read throughput in MB/s (10^6 bytes, headers included).
func (w wrkResult) mbps() float64 {
	if w.durationUs <= 0 {
		return 0
	}
	return float64(w.bytes) / float64(w.durationUs)
}

// parseWrk parses wrk 4.x output: the standard text (with --latency) and the
// BENCH lines printed by doneLua. BENCH values win where both exist.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var textRequests int64
	var textDur float64
	sc := bufio.NewScanner(strings.NewReader(out))
	inDist := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "BENCH "):
			kv := parseKV(f[2:])
			switch f[1] {
			case "summary":
				r.requests = int64(kv["requests"])
				r.durationUs = int64(kv["duration_us"])
				r.bytes = int64(kv["bytes"])
				r.errConnect = int64(kv["connect"])
				r.errRead = int64(kv["read"])
				r.errWrite = int64(kv["write"])
				r.errTimeout = int64(kv["timeout"])
				r.non2xx = int64(kv["status"])
				r.hasSummary = true
			case "latency":
				r.meanUs = kv["mean_us"]
				r.maxUs = kv["max_us"]
				r.p50Us = kv["p50_us"]
				r.p90Us = kv["p90_us"]
				r.p99Us = kv["p99_us"]
				r.p999Us = kv["p999_us"]
				r.fromLua = true
			}
			inDist = false
		case line == "Latency Distribution":
			inDist = true
			r.hasLatencyTables = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			us, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("latency line %q: %v", line, err)
			}
			switch f[0] {
			case "50%":
				r.textP50Us = us
			case "75%":
				r.p75Us = us
			case "90%":
				if !r.fromLua {
					r.p90Us = us
				}
			case "99%":
				r.textP99Us = us
			}
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			// "112839 requests in 2.00s, 16.03MB read"
			inDist = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("requests line %q: %v", line, err)
			}
			textRequests = n
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("requests line %q: %v", line, err)
			}
			textDur = d
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			inDist = false
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if !r.hasSummary {
				r.non2xx = n
			}
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 3, write 0, timeout 0"
			inDist = false
			if !r.hasSummary {
				kv := map[string]int64{}
				for _, part := range strings.Split(strings.TrimPrefix(line, "Socket errors:"), ",") {
					pf := strings.Fields(part)
					if len(pf) == 2 {
						n, _ := strconv.ParseInt(pf[1], 10, 64)
						kv[pf[0]] = n
					}
				}
				r.errConnect, r.errRead, r.errWrite, r.errTimeout = kv["connect"], kv["read"], kv["write"], kv["timeout"]
			}
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			inDist = false
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("requests/sec line %q: %v", line, err)
			}
			r.rps = v
		case strings.HasPrefix(line, "Transfer/sec:") && len(f) == 2:
			inDist = false
			v, err := parseWrkSize(f[1])
			if err != nil {
				return r, fmt.Errorf("transfer/sec line %q: %v", line, err)
			}
			r.transferPerSec = v
		default:
			if inDist && !strings.HasSuffix(f0(f), "%") {
				inDist = false
			}
		}
	}
	if !r.hasSummary {
		if textRequests == 0 && r.rps == 0 {
			return r, fmt.Errorf("no wrk summary found in output")
		}
		r.requests = textRequests
		r.durationUs = int64(textDur)
	}
	if r.durationUs > 0 {
		// Exact rate from the done() summary (the text rate is rounded).
		r.rps = float64(r.requests) * 1e6 / float64(r.durationUs)
	}
	if !r.fromLua {
		r.p50Us, r.p99Us = r.textP50Us, r.textP99Us
	}
	return r, nil
}

func f0(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func parseKV(fields []string) map[string]float64 {
	m := map[string]float64{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			m[k] = x
		}
	}
	return m
}

// parseWrkDuration converts wrk's "666.00us", "0.96ms", "2.00s", "1.50m",
// "1.00h" into microseconds.
func parseWrkDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		mul    float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil {
				return 0, err
			}
			return v * u.mul, nil
		}
	}
	return 0, fmt.Errorf("unknown duration %q", s)
}

// parseWrkSize converts wrk's "8.00MB", "512.00KB", "1.10GB", "100.00B"
// (binary multiples) into bytes.
func parseWrkSize(s string) (float64, error) {
	units := []struct {
		suffix string
		mul    float64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil {
				return 0, err
			}
			return v * u.mul, nil
		}
	}
	return 0, fmt.Errorf("unknown size %q", s)
}

// runWrk runs one bounded wrk load (pinned to CPU 1 when pin is set) and
// parses its output.
func (e *benchEnv) runWrk(url string, conns int, dur time.Duration, luaPath string, headers ...string) (wrkResult, string, error) {
	threads := min(e.o.threads, conns)
	secs := max(1, int((dur+time.Second/2)/time.Second))
	argv := []string{e.o.wrk, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "10s", "--latency", "-s", luaPath}
	for _, h := range headers {
		argv = append(argv, "-H", h)
	}
	argv = append(argv, url)
	if e.pin {
		argv = append([]string{"taskset", "-c", "1"}, argv...)
	}
	argv = withNice(argv, e.o.nice)
	var out, errb bytes.Buffer
	p, err := startProc("wrk", argv, "", &out, &errb, syscall.SIGKILL, e.o.nice)
	if err != nil {
		return wrkResult{}, "", err
	}
	limit := time.Duration(secs)*time.Second + 30*time.Second
	select {
	case <-p.done:
	case <-time.After(limit):
		fmt.Fprintf(os.Stderr, "bench: wrk exceeded %v, killing\n", limit)
	}
	p.stop(time.Second)
	raw := out.String() + errb.String()
	if p.waitErr != nil {
		return wrkResult{}, raw, fmt.Errorf("wrk: %v: %s", p.waitErr, strings.TrimSpace(errb.String()))
	}
	r, err := parseWrk(out.String())
	return r, raw, err
}

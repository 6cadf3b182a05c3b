package pipeline

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkLogCost measures what the combined access log adds to a request
// on the event loop (formatting the line and appending it to the buffered
// writer): compare the two sub-benchmarks. The syscalls a real request
// also costs (~10 µs of read/write/epoll) are not included, so the ratio
// here overstates the log's share of a real request.
func BenchmarkLogCost(b *testing.B) {
	dir := b.TempDir()
	for _, tc := range []struct{ name, log string }{
		{"off", "access_log off;"},
		{"combined", "access_log " + filepath.Join(dir, "access.log") + " combined;"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, ft := newTestConn(b, `error_log `+dir+`/error.log; events {} http { keepalive_requests 1000000000; `+tc.log+`
				server { listen 127.0.0.1:8080; location / { return 200 "ok"; } } }`)
			req := []byte("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\nReferer: http://example.com/\r\n\r\n")
			b.ReportAllocs()
			// CPU time, not wall time: the shared machine's load inflates
			// ns/op but hardly the CPU each request consumes.
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				ft.out.Reset()
				c.Feed(req)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
	_ = os.Remove(filepath.Join(dir, "access.log"))
}

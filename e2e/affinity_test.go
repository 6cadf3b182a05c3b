package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// worker_cpu_affinity pins the event loops' threads: with "auto" and two
// loops, one thread runs on the first allowed CPU only and another on the
// second only.
func TestWorkerCPUAffinity(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil || allowed.Count() < 2 {
		t.Skip("needs 2 CPUs")
	}
	var first []string
	for i := 0; i < 1024 && len(first) < 2; i++ {
		if allowed.IsSet(i) {
			first = append(first, strconv.Itoa(i))
		}
	}
	edge := start(t, "edgeproxy", `
worker_processes 2;
worker_cpu_affinity auto;
events { worker_connections 64; }
http { server { listen 127.0.0.1:{{.Port}}; return 200 "ok\n"; } }
`, t.TempDir())
	// Loops are pinned when they serve their first connection; gnet
	// hands connections to the loops in turn.
	var conns []net.Conn
	for i := 0; i < 4; i++ {
		if r := roundTrip(t, edge.Addr, get("/"), false); r.Status != 200 {
			t.Fatalf("request %d: %d", i, r.Status)
		}
		c, err := net.Dial("tcp", edge.Addr)
		if err == nil {
			conns = append(conns, c)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	want := map[string]bool{first[0]: false, first[1]: false}
	var seen []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		seen = seen[:0]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", edge.cmd.Process.Pid))
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
					v = strings.TrimSpace(v)
					seen = append(seen, v)
					if _, ok := want[v]; ok {
						want[v] = true
					}
				}
			}
		}
		if want[first[0]] && want[first[1]] {
			return
		}
	}
	t.Fatalf("threads not pinned to CPU %s and CPU %s: %v", first[0], first[1], seen)
}

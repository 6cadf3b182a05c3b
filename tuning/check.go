package tuning

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Needs is what the configuration asks of the host (edgeproxy tune -c).
type Needs struct {
	Connections int  // worker_connections × event loops
	Backlog     int  // the largest listen backlog (nginx's default: 511)
	ReusePort   bool // some listener uses reuseport
	CPUs        int  // CPUs the loops may use
}

// Finding is one kernel setting checked by Check.
type Finding struct {
	Key     string // sysctl name, or a resource ("nofile", "nic eth0")
	Current string // as read; "" when unreadable
	Want    string // recommended value; "" when only informative
	Reason  string
	OK      bool
	Sysctl  bool // Want can be applied with sysctl -w Key=Want
}

// Check reads the kernel settings that matter for an edge proxy under root
// ("/" on a real host; a directory with proc/ and sys/ in tests) and says
// what to change. Unreadable settings are reported as such, not guessed.
func Check(root string, n Needs) []Finding {
	if n.Backlog <= 0 {
		n.Backlog = 511
	}
	if n.Connections <= 0 {
		n.Connections = 1024
	}
	var out []Finding
	sysctl := func(name string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(root, "proc/sys", strings.ReplaceAll(name, ".", "/")))
		if err != nil {
			return "", false
		}
		return strings.Join(strings.Fields(string(b)), " "), true
	}
	atLeast := func(name string, min int, reason string) {
		cur, ok := sysctl(name)
		f := Finding{Key: name, Current: cur, Want: strconv.Itoa(min), Reason: reason, Sysctl: true}
		if ok {
			v, err := strconv.Atoi(cur)
			f.OK = err == nil && v >= min
		}
		out = append(out, f)
	}
	exactly := func(name, want, reason string) {
		cur, ok := sysctl(name)
		out = append(out, Finding{Key: name, Current: cur, Want: want, Reason: reason, OK: ok && cur == want, Sysctl: true})
	}
	// Triples "min default max": the max must reach want.
	tripleMax := func(name string, want int, reason string) {
		cur, ok := sysctl(name)
		f := Finding{Key: name, Current: cur, Reason: reason, Sysctl: true}
		if fs := strings.Fields(cur); ok && len(fs) == 3 {
			v, err := strconv.Atoi(fs[2])
			f.OK = err == nil && v >= want
			f.Want = fmt.Sprintf("%s %s %d", fs[0], fs[1], want)
		} else {
			f.Want = fmt.Sprintf("4096 131072 %d", want)
		}
		out = append(out, f)
	}

	backlog := n.Backlog
	if backlog < 4096 {
		backlog = 4096
	}
	atLeast("net.core.somaxconn", backlog,
		fmt.Sprintf("caps every listen backlog (the largest configured is %d); a full accept queue drops SYNs during bursts and reloads", n.Backlog))
	atLeast("net.ipv4.tcp_max_syn_backlog", 2*backlog,
		"half-open connections waiting for the handshake's last ACK; beyond it, SYN cookies or drops")
	atLeast("net.core.netdev_max_backlog", 16384,
		"packets queued per CPU between the NIC and the stack; small values drop under bursts")

	// Upstream connections use local ports: one per connection to the app
	// (plus TIME_WAIT). A narrow range runs out under load.
	if cur, ok := sysctl("net.ipv4.ip_local_port_range"); ok {
		fs := strings.Fields(cur)
		f := Finding{Key: "net.ipv4.ip_local_port_range", Current: cur, Want: "1024 65535", Sysctl: true,
			Reason: "source ports for connections to upstreams; each lingers in TIME_WAIT after close"}
		if len(fs) == 2 {
			lo, _ := strconv.Atoi(fs[0])
			hi, _ := strconv.Atoi(fs[1])
			f.OK = hi-lo >= 50000
		}
		out = append(out, f)
	} else {
		out = append(out, Finding{Key: "net.ipv4.ip_local_port_range", Want: "1024 65535", Sysctl: true, Reason: "unreadable"})
	}
	{
		cur, ok := sysctl("net.ipv4.tcp_tw_reuse")
		// 1 (or 2, loopback only, the kernel default) lets new upstream
		// connections reuse TIME_WAIT ports; 1 covers every interface.
		out = append(out, Finding{Key: "net.ipv4.tcp_tw_reuse", Current: cur, Want: "1", Sysctl: true, OK: ok && cur == "1",
			Reason: "lets new upstream connections reuse ports in TIME_WAIT (2, the default, does it on loopback only)"})
	}
	exactly("net.ipv4.tcp_slow_start_after_idle", "0",
		"keep-alive connections to clients and upstreams keep their congestion window between requests")
	if n.ReusePort {
		exactly("net.ipv4.tcp_migrate_req", "1",
			"with reuseport, connections queued on a socket that closes (a graceful stop, a removed listener) move to a sibling instead of being reset (Linux 5.14+)")
	}

	// Files: every connection is a descriptor, two when proxied.
	need := 2*n.Connections + 1024
	atLeast("fs.file-max", need, fmt.Sprintf("system-wide descriptors; %d connections proxied need about %d", n.Connections, need))
	atLeast("fs.nr_open", need, "the ceiling of any process's RLIMIT_NOFILE")
	out = append(out, nofile(root, need))

	// Socket buffers: enough for a fast client far away (bandwidth × RTT).
	atLeast("net.core.rmem_max", 16<<20, "largest receive buffer a socket may ask for (so_rcvbuf, autotuning)")
	atLeast("net.core.wmem_max", 16<<20, "largest send buffer a socket may ask for (so_sndbuf, autotuning)")
	tripleMax("net.ipv4.tcp_rmem", 16<<20, "receive buffer autotuning ceiling for TCP")
	tripleMax("net.ipv4.tcp_wmem", 16<<20, "send buffer autotuning ceiling for TCP: large responses to slow clients")

	// Busy polling trades CPU for latency; informative only.
	for _, k := range []string{"net.core.busy_poll", "net.core.busy_read"} {
		cur, ok := sysctl(k)
		out = append(out, Finding{Key: k, Current: cur, OK: ok, Sysctl: true,
			Reason: "busy polling (µs) lowers latency at the cost of CPU when the NIC driver supports it; 0 (off) is the safe default, 50 a common latency setting"})
	}
	out = append(out, nics(root, n.CPUs)...)
	return out
}

// nofile reads RLIMIT_NOFILE of the current process from proc/self/limits.
func nofile(root string, need int) Finding {
	f := Finding{Key: "nofile", Want: strconv.Itoa(need),
		Reason: "open files per process (worker_rlimit_nofile, LimitNOFILE= in the systemd unit); edgeproxy raises the soft limit to the hard one"}
	file, err := os.Open(filepath.Join(root, "proc/self/limits"))
	if err != nil {
		return f
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		fs := strings.Fields(line[len("Max open files"):])
		if len(fs) >= 2 {
			f.Current = fs[0] + " " + fs[1] // soft hard
			hard, err := strconv.Atoi(fs[1])
			f.OK = fs[1] == "unlimited" || (err == nil && hard >= need)
		}
	}
	return f
}

// nics reports receive queues, RPS and the CPU affinity of the queues'
// interrupts for each physical interface (informative: what to change
// depends on the NIC).
func nics(root string, cpus int) []Finding {
	ents, err := os.ReadDir(filepath.Join(root, "sys/class/net"))
	if err != nil {
		return nil
	}
	irqs := interrupts(root)
	var out []Finding
	for _, e := range ents {
		name := e.Name()
		if _, err := os.Stat(filepath.Join(root, "sys/class/net", name, "device")); err != nil {
			continue // virtual (lo, bridges, veth, ifb): no queues of its own
		}
		qs, _ := filepath.Glob(filepath.Join(root, "sys/class/net", name, "queues", "rx-*"))
		sort.Strings(qs)
		f := Finding{Key: "nic " + name, Current: fmt.Sprintf("%d rx queues", len(qs)), OK: true}
		var notes []string
		if cpus > 1 && len(qs) > 0 && len(qs) < cpus {
			rps, err := os.ReadFile(filepath.Join(qs[0], "rps_cpus"))
			if err == nil && strings.Trim(strings.TrimSpace(string(rps)), "0,") == "" {
				f.OK = false
				notes = append(notes, fmt.Sprintf("fewer rx queues than CPUs (%d) and RPS off: spread receive work with echo <cpu mask> > /sys/class/net/%s/queues/rx-*/rps_cpus", cpus, name))
			}
		}
		var aff []string
		for _, irq := range irqs[name] {
			b, err := os.ReadFile(filepath.Join(root, "proc/irq", irq, "smp_affinity_list"))
			if err == nil {
				aff = append(aff, irq+":"+strings.TrimSpace(string(b)))
			}
		}
		if len(aff) > 0 {
			f.Current += ", irq cpus " + strings.Join(aff, " ")
			notes = append(notes, "keep the NIC's interrupts off the CPUs the event loops are pinned to (worker_cpu_affinity), or pin each loop next to its queue; irqbalance may move them")
		}
		f.Reason = strings.Join(notes, "; ")
		if f.Reason == "" {
			f.Reason = "nothing to change"
		}
		out = append(out, f)
	}
	return out
}

// interrupts maps interface names to the IRQ numbers whose /proc/interrupts
// line names them (e.g. "eth0-TxRx-0").
func interrupts(root string) map[string][]string {
	out := map[string][]string{}
	b, err := os.ReadFile(filepath.Join(root, "proc/interrupts"))
	if err != nil {
		return out
	}
	ifs, _ := os.ReadDir(filepath.Join(root, "sys/class/net"))
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 2 || !strings.HasSuffix(fs[0], ":") {
			continue
		}
		irq := strings.TrimSuffix(fs[0], ":")
		if _, err := strconv.Atoi(irq); err != nil {
			continue
		}
		last := fs[len(fs)-1]
		for _, e := range ifs {
			if n := e.Name(); n != "lo" && (last == n || strings.HasPrefix(last, n+"-")) {
				out[n] = append(out[n], irq)
			}
		}
	}
	return out
}

// Report prints findings: what to change as sysctl lines with their
// reasons, then what is fine. It returns how many settings to change.
func Report(w io.Writer, root string, fs []Finding) int {
	fmt.Fprintf(w, "# edgeproxy tune: kernel settings for an edge proxy, read under %s\n", root)
	fmt.Fprintf(w, "# Apply the lines below with sysctl -w, or put them in /etc/sysctl.d/90-edgeproxy.conf.\n")
	bad := 0
	for _, f := range fs {
		if f.OK {
			continue
		}
		bad++
		cur := f.Current
		if cur == "" {
			cur = "unreadable"
		}
		fmt.Fprintf(w, "\n# %s (now: %s)\n", f.Reason, cur)
		switch {
		case f.Sysctl && f.Want != "":
			fmt.Fprintf(w, "%s = %s\n", f.Key, f.Want)
		case f.Key == "nofile":
			fmt.Fprintf(w, "# %s: raise to %s (LimitNOFILE=%s in the unit, or worker_rlimit_nofile %s;)\n", f.Key, f.Want, f.Want, f.Want)
		default:
			fmt.Fprintf(w, "# %s\n", f.Key)
		}
	}
	if bad == 0 {
		fmt.Fprintf(w, "\n# nothing to change\n")
	}
	fmt.Fprintf(w, "\n# fine as they are:\n")
	for _, f := range fs {
		if f.OK {
			fmt.Fprintf(w, "#   %s = %s", f.Key, f.Current)
			if f.Want == "" {
				fmt.Fprintf(w, "  (%s)", f.Reason)
			}
			fmt.Fprintln(w)
		}
	}
	return bad
}

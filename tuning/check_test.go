package tuning

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, v := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A stock host: small queues, narrow port range, low limits; the report
// says what to change as sysctl lines, and leaves good settings alone.
func TestCheckStockHost(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"proc/sys/net/core/somaxconn":                 "128\n",
		"proc/sys/net/ipv4/tcp_max_syn_backlog":       "512\n",
		"proc/sys/net/core/netdev_max_backlog":        "1000\n",
		"proc/sys/net/ipv4/ip_local_port_range":       "32768\t60999\n",
		"proc/sys/net/ipv4/tcp_tw_reuse":              "2\n",
		"proc/sys/net/ipv4/tcp_slow_start_after_idle": "1\n",
		"proc/sys/net/ipv4/tcp_migrate_req":           "0\n",
		"proc/sys/fs/file-max":                        "9223372036854775807\n",
		"proc/sys/fs/nr_open":                         "1048576\n",
		"proc/sys/net/core/rmem_max":                  "212992\n",
		"proc/sys/net/core/wmem_max":                  "33554432\n",
		"proc/sys/net/ipv4/tcp_rmem":                  "4096\t131072\t6291456\n",
		"proc/sys/net/ipv4/tcp_wmem":                  "4096\t16384\t4194304\n",
		"proc/sys/net/core/busy_poll":                 "0\n",
		"proc/sys/net/core/busy_read":                 "0\n",
		"proc/self/limits":                            "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n",
		"sys/class/net/lo/queues/rx-0/rps_cpus":       "0\n",
		"sys/class/net/eth0/queues/rx-0/rps_cpus":     "00000000\n",
		"sys/class/net/eth0/device/vendor":            "0x8086\n",
		"sys/class/net/veth1/queues/rx-0/rps_cpus":    "0\n",
		"proc/interrupts":                             "           CPU0       CPU1\n 24:     100     200   PCI-MSI 1  eth0-TxRx-0\n 25:   5   6  PCI-MSI 2  nvme0q0\n",
		"proc/irq/24/smp_affinity_list":               "0-1\n",
	})
	fs := Check(root, Needs{Connections: 20000, Backlog: 511, ReusePort: true, CPUs: 4})
	var out bytes.Buffer
	bad := Report(&out, root, fs)
	text := out.String()
	for _, want := range []string{
		"net.core.somaxconn = 4096\n",
		"net.ipv4.tcp_max_syn_backlog = 8192\n",
		"net.core.netdev_max_backlog = 16384\n",
		"net.ipv4.ip_local_port_range = 1024 65535\n",
		"net.ipv4.tcp_tw_reuse = 1\n",
		"net.ipv4.tcp_slow_start_after_idle = 0\n",
		"net.ipv4.tcp_migrate_req = 1\n",
		"net.core.rmem_max = 16777216\n",
		"net.ipv4.tcp_rmem = 4096 131072 16777216\n",
		"net.ipv4.tcp_wmem = 4096 16384 16777216\n",
		"# nofile: raise to 41024",
		"(now: 1024 4096)",
		"/sys/class/net/eth0/queues/rx-*/rps_cpus",
		"irq cpus 24:0-1",
		"#   fs.file-max = 9223372036854775807",
		"#   net.core.wmem_max = 33554432",
		"#   net.core.busy_poll = 0  (busy polling",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"fs.file-max =", "net.core.wmem_max =", "nic lo", "nvme", "# nic veth1"} {
		if strings.Contains(strings.ReplaceAll(text, "#   ", "OK "), "\n"+bad) {
			t.Errorf("report asks to change %q:\n%s", bad, text)
		}
	}
	if bad < 10 {
		t.Errorf("%d settings to change, want at least 10:\n%s", bad, text)
	}
	// Every non-comment line is a valid sysctl.conf line.
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, " = "); !ok || k == "" || v == "" || strings.ContainsAny(k, " /") {
			t.Errorf("not a sysctl line: %q", line)
		}
	}
}

// A tuned host gets "nothing to change"; unreadable settings are reported,
// not guessed.
func TestCheckTunedAndUnreadable(t *testing.T) {
	files := map[string]string{
		"proc/sys/net/core/somaxconn":                 "65535",
		"proc/sys/net/ipv4/tcp_max_syn_backlog":       "65535",
		"proc/sys/net/core/netdev_max_backlog":        "65535",
		"proc/sys/net/ipv4/ip_local_port_range":       "1024 65535",
		"proc/sys/net/ipv4/tcp_tw_reuse":              "1",
		"proc/sys/net/ipv4/tcp_slow_start_after_idle": "0",
		"proc/sys/fs/file-max":                        "10000000",
		"proc/sys/fs/nr_open":                         "10000000",
		"proc/sys/net/core/rmem_max":                  "67108864",
		"proc/sys/net/core/wmem_max":                  "67108864",
		"proc/sys/net/ipv4/tcp_rmem":                  "4096 131072 67108864",
		"proc/sys/net/ipv4/tcp_wmem":                  "4096 16384 67108864",
		"proc/sys/net/core/busy_poll":                 "50",
		"proc/sys/net/core/busy_read":                 "50",
		"proc/self/limits":                            "Max open files            1048576              1048576              files\n",
	}
	root := fakeRoot(t, files)
	var out bytes.Buffer
	if n := Report(&out, root, Check(root, Needs{Connections: 1024})); n != 0 {
		t.Fatalf("%d changes asked on a tuned host:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "# nothing to change") {
		t.Errorf("no verdict:\n%s", out.String())
	}
	delete(files, "proc/sys/net/core/somaxconn")
	root = fakeRoot(t, files)
	out.Reset()
	Report(&out, root, Check(root, Needs{Connections: 1024}))
	if !strings.Contains(out.String(), "(now: unreadable)\nnet.core.somaxconn = 4096\n") {
		t.Errorf("unreadable somaxconn not reported:\n%s", out.String())
	}
}

// The real host can be read (whatever it says).
func TestCheckRealHost(t *testing.T) {
	fs := Check("/", Needs{Connections: 1024, CPUs: 2})
	if len(fs) < 10 {
		t.Fatalf("only %d findings", len(fs))
	}
	for _, f := range fs {
		if f.Key == "net.core.somaxconn" && f.Current == "" {
			t.Errorf("somaxconn unreadable on this host")
		}
	}
}

// The /proc readers take whatever a (possibly odd) kernel or fake tree
// holds without failing.
func FuzzCheck(f *testing.F) {
	f.Add("128", "Max open files            1024                 4096                 files\n", " 24:  1 2 PCI-MSI eth0-TxRx-0\n", "32768\t60999")
	f.Add("", "Max open files", "x:", "1")
	f.Fuzz(func(t *testing.T, somaxconn, limits, interrupts, ports string) {
		root := fakeRoot(t, map[string]string{
			"proc/sys/net/core/somaxconn":           somaxconn,
			"proc/self/limits":                      limits,
			"proc/interrupts":                       interrupts,
			"proc/sys/net/ipv4/ip_local_port_range": ports,
			"proc/sys/net/ipv4/tcp_rmem":            ports,
			"sys/class/net/eth0/device/vendor":      "x",
		})
		var out bytes.Buffer
		Report(&out, root, Check(root, Needs{CPUs: 4}))
	})
}

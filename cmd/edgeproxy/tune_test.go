package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// "edgeproxy tune -c CONF -root DIR" takes the needs from the config and
// reads the settings under DIR.
func TestTuneCommand(t *testing.T) {
	root := t.TempDir()
	for p, v := range map[string]string{
		"proc/sys/net/core/somaxconn":           "4096",
		"proc/sys/net/ipv4/tcp_max_syn_backlog": "1024",
		"proc/sys/fs/file-max":                  "100000",
		"proc/self/limits":                      "Max open files            1024                 1024                 files\n",
	} {
		full := filepath.Join(root, p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(t.TempDir(), "nginx.conf")
	if err := os.WriteFile(conf, []byte(`worker_processes 2;
events { worker_connections 30000; }
http { server { listen 127.0.0.1:8080 backlog=8192 reuseport; return 200; } }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"tune", "-root", root, "-c", conf}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	for _, want := range []string{
		"net.core.somaxconn = 8192\n",            // the config's backlog
		"net.ipv4.tcp_max_syn_backlog = 16384\n", // twice that
		"fs.file-max = 121024\n",                 // 2 × 30000 × 2 + 1024
		"net.ipv4.tcp_migrate_req = 1\n",         // reuseport
		"the largest configured is 8192",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
	// -check-host on the real host with the same config works too.
	out.Reset()
	if code := run([]string{"-c", conf, "-check-host"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "# edgeproxy tune") {
		t.Fatalf("-check-host: %d %q %s", code, out.String(), errb.String())
	}
}

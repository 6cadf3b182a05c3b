package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const balanceConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    upstream weighted { server BACKEND_A weight=3; server BACKEND_B; server BACKEND_C weight=2; }
    upstream iphash { ip_hash; server BACKEND_A; server BACKEND_B; server BACKEND_C; }
    upstream leastconn { least_conn; server BACKEND_A; server BACKEND_B; }
    upstream failover { server DEAD; server BACKEND_A; server BACKEND_B; }
    server {
        listen 127.0.0.1:{{.Port}};
        location /w/ { proxy_pass http://weighted/app/; }
        location /ip/ { proxy_pass http://iphash/app/; }
        location /lc/ { proxy_pass http://leastconn/app/; }
        location /fo/ { proxy_pass http://failover/app/; }
    }
}
`

// which returns the backend that answered path, sent from local address
// from ("" for any).
func which(t *testing.T, addr, from, path string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, get(path))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, from, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s from %s: %d", path, from, resp.StatusCode)
	}
	return strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "server=")
}

// The balancers pick the same servers as nginx's, request by request:
// smooth weighted round robin over 400 requests, ip_hash by the client's
// /24 (clients from ten networks), least_conn while a slow request holds
// one server, and round robin skipping a dead server.
func TestBalancersDifferential(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	conf := strings.NewReplacer("BACKEND_A", a.addr, "BACKEND_B", b.addr, "BACKEND_C", c.addr, "DEAD", deadAddr(t)).Replace(balanceConf)
	ngx, edge := pair(t, conf, t.TempDir())

	seqs := map[string][2]string{}
	for i, s := range []*server{ngx, edge} {
		var w strings.Builder
		for k := 0; k < 400; k++ {
			w.WriteString(which(t, s.Addr, "", "/w/x"))
		}
		var ip strings.Builder
		for net := 1; net <= 10; net++ {
			for host := 1; host <= 3; host++ { // same /24: same server
				ip.WriteString(which(t, s.Addr, fmt.Sprintf("127.0.%d.%d", net, host), "/ip/x"))
			}
			ip.WriteByte(' ')
		}
		var fo strings.Builder
		for k := 0; k < 12; k++ {
			fo.WriteString(which(t, s.Addr, "", "/fo/x"))
		}
		// least_conn: a slow request holds the first server picked; the
		// requests meanwhile go to the other one.
		var lc strings.Builder
		var wg sync.WaitGroup
		wg.Add(1)
		var slow string
		go func() { defer wg.Done(); slow = which(t, s.Addr, "", "/lc/slow") }()
		time.Sleep(400 * time.Millisecond)
		for k := 0; k < 4; k++ {
			lc.WriteString(which(t, s.Addr, "", "/lc/x"))
		}
		wg.Wait()
		lc.WriteString(" slow=" + slow)
		for name, sb := range map[string]*strings.Builder{"weighted": &w, "ip_hash": &ip, "failover": &fo, "least_conn": &lc} {
			v := seqs[name]
			v[i] = sb.String()
			seqs[name] = v
		}
	}
	for name, v := range seqs {
		if v[0] != v[1] {
			t.Errorf("%s sequence differs:\n nginx     %s\n edgeproxy %s", name, v[0], v[1])
		}
	}
	w := seqs["weighted"][1]
	if strings.Count(w, "a") != 200 || strings.Count(w, "b") != 67 || strings.Count(w, "c") != 133 {
		t.Errorf("weighted split a=%d b=%d c=%d, want 200/67/133", strings.Count(w, "a"), strings.Count(w, "b"), strings.Count(w, "c"))
	}
	for _, grp := range strings.Fields(seqs["ip_hash"][1]) {
		if grp != strings.Repeat(grp[:1], 3) {
			t.Errorf("ip_hash sent one /24 to several servers: %s", grp)
		}
	}
	lc := seqs["least_conn"][1]
	slow := lc[strings.Index(lc, "slow=")+5:]
	if strings.Contains(lc[:4], slow) {
		t.Errorf("least_conn sent requests to the busy server %s: %s", slow, lc)
	}
	if fo := seqs["failover"][1]; len(fo) != 12 {
		t.Errorf("failover answered %q", fo)
	}
}

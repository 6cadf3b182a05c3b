package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// edgeBinary builds cmd/edgeproxy once per test run.
func edgeBinary(t testing.TB) string {
	binOnce.Do(func() {
		// EDGEPROXY_BIN runs the suite against a prebuilt binary (e.g. one
		// built with -race to catch races under real traffic).
		if p := os.Getenv("EDGEPROXY_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "edgeproxy-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "edgeproxy")
		args := []string{"build", "-o", binPath}
		if raceBuild {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../cmd/edgeproxy")...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func nginxBinary(t testing.TB) string {
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	t.Skip("nginx is not installed (make test installs it)")
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is one running server under test.
type server struct {
	Name string
	Addr string // 127.0.0.1:port
	Port int
	Dir  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// confData is what config templates may use.
type confData struct {
	Port  int
	Port2 int
	Dir   string // the test's shared document directory
	Tmp   string // the server's own temp dir
}

func render(t testing.TB, conf string, d confData) string {
	tpl, err := template.New("conf").Parse(conf)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tpl.Execute(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// start runs kind ("nginx" or "edgeproxy") on the config template; docs is
// the shared document directory.
func start(t testing.TB, kind, conf, docs string) *server {
	t.Helper()
	tmp := t.TempDir()
	port, port2 := freePort(t), freePort(t)
	text := render(t, conf, confData{Port: port, Port2: port2, Dir: docs, Tmp: tmp})
	cf := filepath.Join(tmp, "nginx.conf")
	if err := os.WriteFile(cf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Join(tmp, "logs"), 0o755)
	s := &server{Name: kind, Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: tmp, log: &bytes.Buffer{}}
	var cmd *exec.Cmd
	switch kind {
	case "nginx":
		cmd = exec.Command(nginxBinary(t), "-p", tmp, "-c", cf, "-g", "daemon off; master_process off; pid "+tmp+"/nginx.pid; error_log "+tmp+"/error.log;")
	default:
		cmd = exec.Command(edgeBinary(t), "-p", tmp, "-c", cf)
	}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if strings.Contains(s.log.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", kind)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", kind, s.log.String())
			if b, err := os.ReadFile(filepath.Join(tmp, "error.log")); err == nil {
				t.Logf("%s error.log:\n%s", kind, b)
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening on %s: %v\n%s", kind, s.Addr, err, s.log.String())
		}
		if cmd.ProcessState != nil {
			t.Fatalf("%s exited: %s", kind, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pair starts nginx and edgeproxy on the same config.
func pair(t testing.TB, conf, docs string) (ngx, edge *server) {
	nginxBinary(t)
	return start(t, "nginx", conf, docs), start(t, "edgeproxy", conf, docs)
}

// reply is a parsed response plus whether the server closed the connection
// right after it.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
	Closed bool
	Raw    string
	Err    error
}

// roundTrip sends raw request bytes on a fresh connection and reads one
// response (for HEAD requests set head).
func roundTrip(t testing.TB, addr, raw string, head bool) reply {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return reply{Err: err}
	}
	br := bufio.NewReader(c)
	return readReply(c, br, head)
}

func readReply(c net.Conn, br *bufio.Reader, head bool) reply {
	method := "GET"
	if head {
		method = "HEAD"
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return reply{Err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := reply{Status: resp.StatusCode, Header: resp.Header, Body: body, Err: err}
	// Did the server close after the response?
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	_, perr := br.Peek(1)
	r.Closed = perr == io.EOF || (perr != nil && !isTimeout(perr))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return r
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

var (
	serverTag = regexp.MustCompile(`<center>(nginx|edgeproxy)(/[0-9.]+)?</center>`)
	portRe    = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)
)

// normBody removes the product name from built-in pages.
func normBody(b []byte) string {
	return serverTag.ReplaceAllString(string(b), "<center>SERVER</center>")
}

// compareHeaders lists the headers that must match between nginx and
// edgeproxy (Server and Date differ by design).
var compareHeaders = []string{"Content-Type", "Content-Length", "Last-Modified", "ETag", "Expires", "Cache-Control",
	"Accept-Ranges", "Content-Range", "Location", "Connection", "Keep-Alive", "X-Test", "X-Frame-Options", "X-Uri", "Strict-Transport-Security"}

// diff compares two replies; ports in Location are normalised.
func diff(a, b reply, ngxPort, edgePort int) []string {
	var out []string
	if (a.Err == nil) != (b.Err == nil) {
		return []string{fmt.Sprintf("error: nginx %v, edgeproxy %v", a.Err, b.Err)}
	}
	if a.Status != b.Status {
		out = append(out, fmt.Sprintf("status: nginx %d, edgeproxy %d", a.Status, b.Status))
	}
	// Built-in pages name the product ("nginx/1.22.1" vs "edgeproxy/..."),
	// so their Content-Length legitimately differs; the normalised body
	// comparison below covers them, and each side's length is checked
	// against its own body.
	tagged := serverTag.Match(a.Body) || serverTag.Match(b.Body)
	for _, h := range compareHeaders {
		if h == "Content-Length" && tagged {
			for _, r := range []reply{a, b} {
				if cl := r.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(r.Body)) {
					out = append(out, fmt.Sprintf("Content-Length %s but body %d bytes", cl, len(r.Body)))
				}
			}
			continue
		}
		av := strings.Join(a.Header.Values(h), ",")
		bv := strings.Join(b.Header.Values(h), ",")
		av = strings.ReplaceAll(av, fmt.Sprint(ngxPort), "PORT")
		bv = strings.ReplaceAll(bv, fmt.Sprint(edgePort), "PORT")
		if h == "Expires" && av != "" && bv != "" {
			// Both are "now + N": allow the second they were made in.
			ta, e1 := http.ParseTime(av)
			tb, e2 := http.ParseTime(bv)
			if e1 == nil && e2 == nil && absDur(ta.Sub(tb)) <= 2*time.Second {
				continue
			}
		}
		if av != bv {
			out = append(out, fmt.Sprintf("header %s: nginx %q, edgeproxy %q", h, av, bv))
		}
	}
	if na, nb := normBody(a.Body), normBody(b.Body); na != nb {
		out = append(out, fmt.Sprintf("body: nginx %q, edgeproxy %q", clip(na), clip(nb)))
	}
	if a.Closed != b.Closed {
		out = append(out, fmt.Sprintf("connection closed after response: nginx %v, edgeproxy %v", a.Closed, b.Closed))
	}
	return out
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// differential sends each raw request to both servers and reports any
// difference a client could see.
func differential(t *testing.T, ngx, edge *server, cases []dcase) {
	t.Helper()
	for _, tc := range cases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			rawN := strings.ReplaceAll(tc.raw, "PORT", fmt.Sprint(ngx.Port))
			rawE := strings.ReplaceAll(tc.raw, "PORT", fmt.Sprint(edge.Port))
			a := roundTrip(t, ngx.Addr, rawN, tc.head)
			b := roundTrip(t, edge.Addr, rawE, tc.head)
			if a.Err != nil && b.Err != nil {
				return
			}
			if d := diff(a, b, ngx.Port, edge.Port); len(d) > 0 {
				t.Errorf("%q differs:\n  %s", clip(tc.raw), strings.Join(d, "\n  "))
			}
			if tc.status != 0 && b.Status != tc.status {
				t.Errorf("edgeproxy status %d, want %d", b.Status, tc.status)
			}
		})
	}
}

type dcase struct {
	name   string
	raw    string
	head   bool
	status int // expected status too (guards against both being wrong the same way)
}

func get(path string, extra ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" + strings.Join(extra, "") + "\r\n"
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 64<<10) }

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }

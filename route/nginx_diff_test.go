package route

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const nginxBin = "/usr/sbin/nginx"

func freePorts(t *testing.T, n int) []int {
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startNginx runs nginx in the foreground from a temp prefix and stops it
// when the test ends.
func startNginx(t *testing.T, conf string, ports []int) {
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	os.MkdirAll(filepath.Join(dir, "html"), 0o755)
	conf = strings.ReplaceAll(conf, "DIR", dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "daemon off; master_process off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr warn;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range ports {
		for {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx did not start: %s", stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// rawGet sends a hand-written request (so Host can be omitted or odd) and
// returns the status code and body.
func rawGet(t *testing.T, port int, req string) (int, string) {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	br := bufio.NewReader(c)
	var status int
	line, _ := br.ReadString('\n')
	fmt.Sscanf(line, "HTTP/1.1 %d", &status)
	for {
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	body, _ := io.ReadAll(br)
	return status, string(body)
}

func TestDifferentialServerNames(t *testing.T) {
	ports := freePorts(t, 1)
	p := ports[0]
	servers := []struct {
		names []string // as written in nginx.conf; our Add gets them unquoted
		dflt  bool
	}{
		{[]string{"_"}, true},
		{[]string{"example.com", "www.example.com"}, false},
		{[]string{"*.example.com"}, false},
		{[]string{".example.org"}, false},
		{[]string{"www.example.*"}, false},
		{[]string{`~^(?<user>[a-z]+)\.example\.net$`}, false},
		{[]string{`~^www\.`}, false},
		{[]string{"", "*.deep.example.com", "mail.*"}, false},
		{[]string{`~^(\d+)\.num\.test$`, `~^UP\.test$`}, false},
		{[]string{"example.com", "dup.test", "*.example.com", "trail.test."}, false},
		{[]string{"mail.example.*", `~^[a-z]+\.regex\.example\.com$`}, false},
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "events {}\nhttp {\n access_log off;\n")
	sn := NewServerNames()
	for i, s := range servers {
		var quoted []string
		for _, n := range s.names {
			quoted = append(quoted, `"`+n+`"`)
			sn.Add(n, i)
		}
		ds := ""
		if s.dflt {
			ds = " default_server"
		}
		ret := fmt.Sprintf("s%d", i)
		if i == 5 {
			ret += ":$user"
		}
		if i == 8 {
			ret += ":$1"
		}
		fmt.Fprintf(&conf, " server { listen 127.0.0.1:%d%s; server_name %s; return 200 \"%s\"; }\n", p, ds, strings.Join(quoted, " "), ret)
	}
	conf.WriteString("}\n")
	sn.Build()
	startNginx(t, conf.String(), ports)

	hosts := []string{"example.com", "EXAMPLE.COM", "Example.Com:8080", "example.com.", "www.example.com",
		"a.example.com", "a.b.example.com", "x.deep.example.com", "deep.example.com", "example.org",
		"x.example.org", "xexample.org", "www.example.de", "www.example.co.uk", "www.example", "mail.example.x",
		"mail.x", "mail", "joe.example.net", "JOE.example.net", "www.other.net", "123.num.test", "up.test",
		"dup.test", "trail.test", "trail.test.", "unknown.test", "[::1]:80", "_", "a.regex.example.com",
		"127.0.0.1", ".example.com", "<none>",
		// nginx answers 400 to these
		"a..b", "", ":80", "a.b..",
	}
	for _, h := range hosts {
		req := "GET / HTTP/1.1\r\nHost: " + h + "\r\nConnection: close\r\n\r\n"
		if h == "<none>" {
			req = "GET / HTTP/1.0\r\n\r\n"
			h = ""
		}
		status, body := rawGet(t, p, req)
		if status == 400 {
			if _, ok := ValidateHost([]byte(h)); ok {
				t.Errorf("Host %q: nginx 400, ValidateHost accepted", h)
			}
			continue
		}
		want := ""
		srv, caps, ok := sn.Match([]byte(h), make([]int, 0, 8))
		if !ok {
			srv = 0 // default_server, chosen by the caller
		}
		want = fmt.Sprintf("s%d", srv)
		if srv == 5 || srv == 8 {
			// Capture offsets refer to the normalised host.
			norm, _ := ValidateHost([]byte(h))
			want += ":" + string(Captures(norm, caps, 1))
		}
		if status != 200 || body != want {
			t.Errorf("Host %q: nginx %d %q, route %q", h, status, body, want)
		}
	}
}

func TestDifferentialLocations(t *testing.T) {
	ports := freePorts(t, 3)
	main, up, small := ports[0], ports[1], ports[2]
	r := func(id int) string { return fmt.Sprintf("return 200 \"L%d\";", id) }
	rc := func(id int, vars string) string { return fmt.Sprintf("return 200 \"L%d:%s\";", id, vars) }
	proxy := func(id int) string {
		return fmt.Sprintf("proxy_set_header X-L L%d; proxy_pass http://127.0.0.1:%d;", id, up)
	}
	type L struct {
		mod, pat, body string
		id             int
		redirect       bool
		kids           []L
	}
	locs := []L{
		{"=", "/", r(1), 1, false, nil},
		{"", "/", r(2), 2, false, nil},
		{"", "/documents/", r(3), 3, false, nil},
		{"^~", "/images/", r(4), 4, false, nil},
		{"~*", `\.(gif|jpg|jpeg)$`, rc(5, "$1"), 5, false, nil},
		{"", "/images", r(6), 6, false, nil},
		{"", "/a", r(7), 7, false, []L{
			{"~", `\.php$`, r(8), 8, false, nil},
			{"", "/a/b", r(9), 9, false, []L{{"~", `^/a/b/c`, r(10), 10, false, nil}}},
			{"=", "/a/x", r(11), 11, false, nil},
		}},
		{"~", `\.php$`, r(12), 12, false, nil},
		{"~", `^/a/.*\.php$`, r(13), 13, false, nil},
		{"~", `^/(?<first>[a-z]+)/(\d+)$`, rc(14, "$1:$2:$first"), 14, false, nil},
		{"^~", "/static/", r(15), 15, false, []L{{"~", `\.css$`, r(16), 16, false, nil}}},
		{"~", "/CaseSens", r(17), 17, false, nil},
		{"", "/proxy/", proxy(18), 18, true, nil},
		{"=", "/exact/", proxy(19), 19, true, nil},
		{"~", `^/exact$`, r(26), 26, false, nil},
		{"", "/deep", r(20), 20, false, []L{{"", "/deep/er", r(21), 21, false, []L{{"", "/deep/er/est", r(22), 22, false, nil}}}}},
		{"~", `^/deep/er/r`, r(23), 23, false, nil},
		{"~", `^/rx/`, r(24), 24, false, []L{{"~", `\.txt$`, r(25), 25, false, nil}, {"", "^/rx/lit", r(27), 27, false, nil}}},
		{"", "/a-b", r(28), 28, false, nil},
		{"", "/a/", r(29), 29, false, nil},
		{"@", "named", r(30), 30, false, nil},
		{"", "/tryf", "try_files /nonexistent @named;", 31, false, nil},
	}
	var toSpec func(L) Spec
	toSpec = func(l L) Spec {
		s := Spec{Modifier: l.mod, Pattern: l.pat, Index: l.id, AutoRedirect: l.redirect}
		for _, k := range l.kids {
			s.Children = append(s.Children, toSpec(k))
		}
		return s
	}
	var write func(*strings.Builder, L)
	write = func(b *strings.Builder, l L) {
		name := l.pat
		if l.mod == "@" {
			name = "@" + name
			l.mod = ""
		}
		fmt.Fprintf(b, "location %s \"%s\" { %s ", l.mod, name, l.body)
		for _, k := range l.kids {
			write(b, k)
		}
		b.WriteString("}\n")
	}
	var locSet Locations
	var conf strings.Builder
	fmt.Fprintf(&conf, "events {}\nhttp {\n access_log off;\n root DIR/html;\n")
	fmt.Fprintf(&conf, "server { listen 127.0.0.1:%d; ", main)
	for _, l := range locs {
		if err := locSet.Add(toSpec(l)); err != nil {
			t.Fatal(err)
		}
		write(&conf, l)
	}
	conf.WriteString("}\n")
	fmt.Fprintf(&conf, "server { listen 127.0.0.1:%d; return 200 $http_x_l; }\n", up)
	fmt.Fprintf(&conf, "server { listen 127.0.0.1:%d; location /x { return 200 \"L40\"; } location ~ ^/y$ { return 200 \"L41\"; } }\n", small)
	conf.WriteString("}\n")
	locSet.Build()
	var small2 Locations
	small2.Add(Spec{Pattern: "/x", Index: 40})
	small2.Add(Spec{Modifier: "~", Pattern: "^/y$", Index: 41})
	small2.Build()
	startNginx(t, conf.String(), ports)

	uris := []string{"/", "/index.html", "/documents/", "/documents/a.jpg", "/documents", "/images", "/images/",
		"/images/a.gif", "/images/A.GIF", "/IMG.JPG", "/x.Jpeg", "/imagesx", "/a", "/a.php", "/a/b", "/a/b/c.php",
		"/a/b/d.php", "/a/x", "/a/x/y", "/b.php", "/a/q.php", "/abc/123", "/static/x.css", "/static/x.php",
		"/CaseSens", "/casesens", "/proxy", "/proxy/", "/proxy/z", "/exact", "/exact/", "/deep/er/rx",
		"/deep/er/est", "/deep/e", "/rx/a", "/rx/a.txt", "/a-b", "/a-b/c", "/a/", "/a/c", "/a.b", "/named",
		"/@named", "/tryf", "/images/x.php", "/documents/x.php",
	}
	check := func(port int, set *Locations, uri string) {
		status, body := rawGet(t, port, "GET "+uri+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		idx, caps, redirect, ok := set.MatchRedirect([]byte(uri), make([]int, 0, 20))
		var want string
		switch {
		case !ok:
			want = "404"
		case redirect:
			want = "301"
		default:
			want = fmt.Sprintf("200 L%d", idx)
			if idx == 31 { // try_files falls back to @named
				want = "200 L30"
			}
			if len(caps) > 0 {
				want += ":" + string(Captures([]byte(uri), caps, 1))
				if idx == 14 {
					re, _ := CompileRegex(`^/(?<first>[a-z]+)/(\d+)$`, false)
					want += ":" + string(Captures([]byte(uri), caps, 2)) + ":" + string(Captures([]byte(uri), caps, re.SubexpIndex("first")))
				}
			}
		}
		got := fmt.Sprint(status)
		if status == 403 { // no location: static "/" without index file
			got = "404"
		}
		if status == 200 {
			got += " " + body
		}
		if got != want {
			t.Errorf("%s: nginx %q, route %q", uri, got, want)
		}
	}
	for _, u := range uris {
		check(main, &locSet, u)
	}
	for _, u := range []string{"/", "/x", "/xy", "/y", "/yy"} {
		check(small, &small2, u)
	}
}

// TestNginxConfigErrors checks that our configuration errors are the ones
// nginx -t prints for the same location blocks.
func TestNginxConfigErrors(t *testing.T) {
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx not installed")
	}
	cases := []struct {
		conf  string
		specs []Spec
	}{
		{`location /a {} location /a {}`, []Spec{{Pattern: "/a"}, {Pattern: "/a"}}},
		{`location ^~ /a {} location /a {}`, []Spec{{Modifier: "^~", Pattern: "/a"}, {Pattern: "/a"}}},
		{`location /y { location /x {} }`, []Spec{{Pattern: "/y", Children: []Spec{{Pattern: "/x"}}}}},
		{`location = /e { location /e/x {} }`, []Spec{{Modifier: "=", Pattern: "/e", Children: []Spec{{Pattern: "/e/x"}}}}},
		{`location @n { location /x {} }`, []Spec{{Modifier: "@", Pattern: "n", Children: []Spec{{Pattern: "/x"}}}}},
		{`location / { location @n {} }`, []Spec{{Pattern: "/", Children: []Spec{{Modifier: "@", Pattern: "n"}}}}},
		{`location ~ ^/r { location /r/x {} }`, []Spec{{Modifier: "~", Pattern: "^/r", Children: []Spec{{Pattern: "/r/x"}}}}},
		{`location =~ / {}`, []Spec{{Modifier: "=~", Pattern: "/"}}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		conf := "events {}\nhttp { server { listen 127.0.0.1:1; " + c.conf + " } }\n"
		os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644)
		out, _ := exec.Command(nginxBin, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
			"-g", "pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;").CombinedOutput()
		var l Locations
		var err error
		for _, s := range c.specs {
			if err = l.Add(s); err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("%s: no error from Add; nginx: %s", c.conf, out)
			continue
		}
		// nginx prints %V unescaped in double quotes; %q matches for these.
		if !strings.Contains(string(out), err.Error()) {
			t.Errorf("%s: route %q not in nginx output:\n%s", c.conf, err, out)
		}
	}
}

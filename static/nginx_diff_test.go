package static

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nginxBin = "/usr/sbin/nginx"

// diffLoc mirrors one nginx location of the differential config.
type diffLoc struct {
	prefix  string
	nginx   string // directives inside the location block
	ims     IMSMode
	noETag  bool
	expires []string // ParseExpires args; nil = off
}

var diffLocs = []diffLoc{
	{prefix: "/"},
	{prefix: "/before/", nginx: "if_modified_since before;", ims: IMSBefore},
	{prefix: "/off/", nginx: "if_modified_since off; etag off;", ims: IMSOff, noETag: true},
	{prefix: "/e1h/", nginx: "expires 1h;", expires: []string{"1h"}},
	{prefix: "/eplus/", nginx: "expires +1d2h3m4s;", expires: []string{"+1d2h3m4s"}},
	{prefix: "/eepoch/", nginx: "expires epoch;", expires: []string{"epoch"}},
	{prefix: "/emax/", nginx: "expires max;", expires: []string{"max"}},
	{prefix: "/eneg/", nginx: "expires -1;", expires: []string{"-1"}},
	{prefix: "/ezero/", nginx: "expires 0;", expires: []string{"0"}},
	{prefix: "/eoff/", nginx: "expires off;", expires: []string{"off"}},
	{prefix: "/emod/", nginx: "expires modified +1h;", expires: []string{"modified", "+1h"}},
	{prefix: "/emodold/", nginx: "expires modified 1d;", expires: []string{"modified", "1d"}},
	{prefix: "/edaily/", nginx: "expires @15h30m;", expires: []string{"@15h30m"}},
	{prefix: "/ey/", nginx: "expires 1y;", expires: []string{"1y"}},
	{prefix: "/esp/", nginx: `expires "1 2";`, expires: []string{"1 2"}},
	{prefix: "/emix/", nginx: "expires 1M2w3d4h5m6s;", expires: []string{"1M2w3d4h5m6s"}},
}

type diffEnv struct {
	root  string
	addr  string
	cache *Cache
	types *Types
	locs  []diffLoc
	exps  []Expires
}

// startNginx writes the fixture tree and an nginx.conf serving it, starts
// nginx in the foreground (master_process off, so it runs as the test user
// and needs no worker user) and returns when it accepts connections.
func startNginx(t *testing.T) *diffEnv {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx not installed")
	}
	prefix := t.TempDir()
	root := filepath.Join(prefix, "html")
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFixtures(t, root)

	mimePath := "/etc/nginx/mime.types"
	if _, err := os.Stat(mimePath); err != nil {
		mimePath = filepath.Join(prefix, "mime.types")
		if err := os.WriteFile(mimePath, []byte(nginxMimeTypes), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var locs strings.Builder
	for _, l := range diffLocs {
		if l.prefix == "/" {
			continue
		}
		fmt.Fprintf(&locs, "    location %s { alias %s/; %s }\n", l.prefix, root, l.nginx)
	}
	conf := fmt.Sprintf(`master_process off;
events { worker_connections 64; }
http {
  include %s;
  access_log off;
  server {
    listen %s;
    root %s;
%s  }
}
`, mimePath, addr, root, locs.String())
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", prefix, "-c", confPath, "-g",
		"daemon off; pid "+filepath.Join(prefix, "nginx.pid")+"; error_log stderr;")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start nginx: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	env := &diffEnv{root: root, addr: addr, cache: &Cache{}, types: DefaultTypes(), locs: diffLocs}
	for _, l := range diffLocs {
		var e Expires
		if l.expires != nil {
			e, err = ParseExpires(l.expires)
			if err != nil {
				t.Fatal(err)
			}
		}
		env.exps = append(env.exps, e)
	}
	return env
}

var (
	mtimeRecent = time.Now().Add(-30 * time.Minute).Truncate(time.Second).Add(500 * time.Millisecond)
	mtimeOld    = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
)

func writeFixtures(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "dir"), 0o755))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	files := map[string][]byte{
		"small.txt":       rnd(1024),
		"big.bin":         rnd(100 << 10),
		"style.css":       []byte("body { color: red }\n"),
		"data.unknownext": []byte("??"),
		"UPPER.CSS":       []byte("p{}"),
		"photo.JpG":       []byte("not really a jpeg"),
		"noext":           []byte("plain"),
		"empty.txt":       nil,
		".hidden.css":     []byte("x"),
		"dir/inner.html":  []byte("<p>hi</p>"),
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		must(os.WriteFile(p, data, 0o644))
		mt := mtimeOld
		if name == "small.txt" {
			mt = mtimeRecent
		}
		must(os.Chtimes(p, mt, mt))
	}
	must(os.Symlink("loop", filepath.Join(root, "loop")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	// Unreadable file: only meaningful when not root (root bypasses
	// permission checks, so nginx and we would both serve it).
	must(os.WriteFile(filepath.Join(root, "secret.txt"), []byte("s"), 0o000))
}

// rawGet sends a GET with the given extra header lines to nginx and reads
// the response.
func rawGet(t *testing.T, addr, uri string, hdrs []string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", uri)
	for _, h := range hdrs {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	return readResp(t, bufio.NewReader(c))
}

func readResp(t *testing.T, r *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// serve is the test's tiny HTTP responder: it builds a complete raw
// response for a GET of uri using only this package, in nginx's filter
// order. boundary is the multipart boundary to use (taken from nginx's
// response so that bodies can be compared byte for byte).
func (env *diffEnv) serve(uri string, hdrs []string, boundary uint64, now time.Time) []byte {
	var h = map[string][]byte{}
	for _, l := range hdrs {
		k, v, _ := strings.Cut(l, ":")
		h[strings.ToLower(k)] = []byte(strings.TrimSpace(v))
	}
	li := 0
	for i, l := range env.locs {
		if strings.HasPrefix(uri, l.prefix) && len(l.prefix) > len(env.locs[li].prefix) {
			li = i
		}
	}
	loc, exp := env.locs[li], env.exps[li]
	path := env.root + "/" + uri[len(loc.prefix):]

	var out []byte
	errorPage := func(status int, extra []byte) []byte {
		out = fmt.Appendf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: 0\r\n", status, http.StatusText(status))
		out = append(out, extra...)
		return append(out, "\r\n"...)
	}

	f, err := env.cache.Open([]byte(path))
	if err != nil {
		return errorPage(Status(err), nil)
	}
	if f.IsDir {
		return errorPage(301, []byte("Location: "+uri+"/\r\n"))
	}
	etag := !loc.noETag
	status := Conditional(f, h["if-modified-since"], h["if-none-match"], h["if-match"], h["if-unmodified-since"], loc.ims, etag)
	if status == 412 {
		return errorPage(412, nil)
	}
	ctype := env.types.Lookup([]byte(uri))
	if ctype == nil {
		ctype = []byte("text/plain")
	}
	var expHdr []byte
	if st := max(status, 200); exp.AppliesTo(st) {
		expHdr = exp.AppendHeaders(nil, now, f.ModTime)
	}
	if status == 304 {
		out = append(out, "HTTP/1.1 304 Not Modified\r\n"...)
		out = AppendFileHeaders(out, f, etag)
		out = append(out, expHdr...)
		return append(out, "\r\n"...)
	}

	var ranges []Range
	rstatus := 200
	if rh, ok := h["range"]; ok && IfRange(f, h["if-range"], etag) {
		ranges, rstatus = ParseRange(rh, f.Size, make([]Range, 0, 4))
	}
	if rstatus == 416 {
		return errorPage(416, append(expHdr, "Content-Range: "+string(AppendUnsatisfiedRange(nil, f.Size))+"\r\n"...))
	}

	content := func(r Range) []byte {
		if f.Data != nil {
			return f.Data[r.Start:r.End]
		}
		fd, err := f.OpenFD()
		if err != nil {
			panic(err)
		}
		defer fd.Close()
		b := make([]byte, r.Len())
		if _, err := fd.ReadAt(b, r.Start); err != nil && err != io.EOF {
			panic(err)
		}
		return b
	}
	var body []byte
	var clen int64
	switch {
	case rstatus == 206 && len(ranges) == 1:
		out = append(out, "HTTP/1.1 206 Partial Content\r\n"...)
		out = append(out, "Content-Type: "+string(ctype)+"\r\n"...)
		clen = ranges[0].Len()
		body = content(ranges[0])
	case rstatus == 206:
		mp := Multipart{Boundary: boundary, ContentType: ctype, Size: f.Size}
		out = append(out, "HTTP/1.1 206 Partial Content\r\nContent-Type: "...)
		out = mp.AppendContentType(out)
		out = append(out, "\r\n"...)
		for _, r := range ranges {
			body = mp.AppendPartHeader(body, r)
			body = append(body, content(r)...)
		}
		body = mp.AppendTrailer(body)
		clen = mp.ContentLength(ranges)
	default:
		out = append(out, "HTTP/1.1 200 OK\r\n"...)
		out = append(out, "Content-Type: "+string(ctype)+"\r\n"...)
		clen = f.Size
		body = content(Range{0, f.Size})
	}
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, clen, 10)
	out = append(out, "\r\n"...)
	out = AppendFileHeaders(out, f, etag)
	out = append(out, expHdr...)
	if rstatus == 206 && len(ranges) == 1 {
		out = append(out, "Content-Range: "...)
		out = AppendContentRange(out, ranges[0], f.Size)
		out = append(out, "\r\n"...)
	} else if rstatus != 206 {
		out = append(out, "Accept-Ranges: bytes\r\n"...)
	}
	out = append(out, "\r\n"...)
	return append(out, body...)
}

var comparedHeaders = []string{"Content-Type", "Content-Length", "ETag", "Last-Modified",
	"Content-Range", "Expires", "Cache-Control", "Accept-Ranges"}

type diffCase struct {
	uri  string
	hdrs []string
}

func TestDifferentialNginx(t *testing.T) {
	env := startNginx(t)
	small, err := env.cache.Open([]byte(env.root + "/small.txt"))
	if err != nil {
		t.Fatal(err)
	}
	big, err := env.cache.Open([]byte(env.root + "/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if small.Data == nil || big.Data != nil {
		t.Fatalf("small.Data nil=%v big.Data nil=%v", small.Data == nil, big.Data == nil)
	}
	se, sl := string(small.ETag), string(small.LastModified)
	be, bl := string(big.ETag), string(big.LastModified)
	weakS := "W/" + se
	lmTime := time.Unix(small.ModTime.Unix(), 0).UTC()
	rfc850 := lmTime.Format("Monday, 02-Jan-06 15:04:05 GMT")
	asctime := lmTime.Format("Mon Jan _2 15:04:05 2006")
	later := string(AppendHTTPTime(nil, small.ModTime.Unix()+10))
	earlier := string(AppendHTTPTime(nil, small.ModTime.Unix()-10))

	var cases []diffCase
	add := func(uri string, hdrs ...string) { cases = append(cases, diffCase{uri, hdrs}) }

	// Plain GETs: types, sizes, errors.
	for _, u := range []string{"/small.txt", "/big.bin", "/style.css", "/data.unknownext",
		"/UPPER.CSS", "/photo.JpG", "/noext", "/empty.txt", "/.hidden.css", "/dir/inner.html",
		"/dir", "/missing.txt", "/small.txt/child", "/" + strings.Repeat("n", 300) + ".txt",
		"/loop", "/fifo"} {
		add(u)
	}
	if os.Geteuid() != 0 {
		add("/secret.txt")
	} else {
		t.Log("running as root: EACCES (403) cannot be provoked; covered by TestStatus")
	}
	// Conditionals on each if_modified_since/etag mode.
	for _, p := range []string{"/", "/before/", "/off/"} {
		for _, f := range []struct{ name, etag, lm string }{{"small.txt", se, sl}, {"big.bin", be, bl}} {
			u := p + f.name
			add(u, "If-None-Match: "+f.etag)
			add(u, `If-None-Match: "a", `+f.etag+` , "b"`)
			add(u, `If-None-Match: "a","b"`)
			add(u, "If-None-Match: *")
			add(u, "If-None-Match: W/"+f.etag)
			add(u, "If-Modified-Since: "+f.lm)
			add(u, "If-Match: "+f.etag)
			add(u, `If-Match: "nope"`)
			add(u, "If-Match: *")
			add(u, "If-Unmodified-Since: "+f.lm)
		}
		u := p + "small.txt"
		add(u, "If-None-Match: "+weakS+", "+se)
		add(u, "If-Modified-Since: "+later)
		add(u, "If-Modified-Since: "+earlier)
		add(u, "If-Modified-Since: garbage")
		add(u, "If-Modified-Since: "+rfc850)
		add(u, "If-Modified-Since: "+asctime)
		add(u, "If-Modified-Since: "+sl, `If-None-Match: "other"`)
		add(u, "If-Modified-Since: "+earlier, "If-None-Match: "+se)
		add(u, "If-Modified-Since: "+later, "If-None-Match: "+se)
		add(u, "If-Match: W/"+se)
		add(u, "If-Unmodified-Since: "+earlier)
		add(u, "If-Unmodified-Since: "+later)
		add(u, "If-Unmodified-Since: bogus")
		add(u, `If-Match: "nope"`, "If-None-Match: "+se)
		add(u, "If-None-Match: "+se, "Range: bytes=0-9")
	}
	// Ranges.
	for _, u := range []string{"/small.txt", "/big.bin", "/off/small.txt"} {
		for _, r := range []string{"bytes=0-99", "bytes=-500", "bytes=500-", "bytes=0-0",
			"bytes=1023-", "bytes=1024-", "bytes=-0", "bytes=0-", "bytes=-2000000",
			"bytes=5-1", "bytes=0-1,5-9", "bytes=10-20,0-1,1000-1023", "bytes=0-1,0-1023",
			"bytes=0-1,2000000-", "bytes=x", "bytes= 1 - 2 , 4 - 6", "BYTES=0-1",
			"bytes=1-2-3", "bytes=--1", "bytes=99999999999999999999-", "items=0-1",
			"bytes=", "bytes=0-1,"} {
			add(u, "Range: "+r)
		}
	}
	add("/empty.txt", "Range: bytes=0-")
	add("/empty.txt", "Range: bytes=-1")
	add("/style.css", "Range: bytes=0-1,3-4")
	add("/noext", "Range: bytes=0-0,2-2")
	add("/small.txt", "Range: bytes=0-9", "If-Range: "+se)
	add("/small.txt", "Range: bytes=0-9", `If-Range: "mismatch"`)
	add("/small.txt", "Range: bytes=0-9", "If-Range: "+weakS)
	add("/small.txt", "Range: bytes=0-9", "If-Range: "+sl)
	add("/small.txt", "Range: bytes=0-9", "If-Range: "+earlier)
	add("/small.txt", "Range: bytes=0-9", "If-Range: junk")
	add("/off/small.txt", "Range: bytes=0-9", "If-Range: "+se)
	add("/big.bin", "Range: bytes=100-199,-10", "If-Range: "+be)
	// Expires variants, including on 304, 206, 412 and 416.
	for _, l := range diffLocs {
		if l.expires == nil {
			continue
		}
		for _, f := range []string{"small.txt", "big.bin"} {
			add(l.prefix + f)
		}
		u := l.prefix + "small.txt"
		add(u, "If-None-Match: "+se)
		add(u, "Range: bytes=0-9")
		add(u, "Range: bytes=5000-")
		add(u, `If-Match: "x"`)
		add(l.prefix + "missing")
	}

	statuses := map[int]int{}
	for _, c := range cases {
		name := c.uri
		if len(name) > 40 {
			name = name[:40]
		}
		if len(c.hdrs) > 0 {
			name += " " + strings.Join(c.hdrs, " | ")
		}
		ngx, ngxBody := rawGet(t, env.addr, c.uri, c.hdrs)
		now := time.Now()
		var boundary uint64
		if ct := ngx.Header.Get("Content-Type"); strings.HasPrefix(ct, "multipart/byteranges; boundary=") {
			boundary, _ = strconv.ParseUint(strings.TrimPrefix(ct, "multipart/byteranges; boundary="), 10, 64)
		}
		raw := env.serve(c.uri, c.hdrs, boundary, now)
		ours, ourBody := readResp(t, bufio.NewReader(bytes.NewReader(raw)))

		statuses[ngx.StatusCode]++
		if ngx.StatusCode != ours.StatusCode {
			t.Errorf("%s: status nginx %d, ours %d", name, ngx.StatusCode, ours.StatusCode)
			continue
		}
		isErr := ngx.StatusCode >= 300 && ngx.StatusCode != 304
		for _, hn := range comparedHeaders {
			if isErr && hn == "Content-Length" {
				continue // nginx's HTML error page
			}
			nv, ov := ngx.Header.Values(hn), ours.Header.Values(hn)
			if !sameHeader(hn, nv, ov) {
				t.Errorf("%s: %s nginx %q, ours %q", name, hn, nv, ov)
			}
		}
		if !isErr && !bytes.Equal(ngxBody, ourBody) {
			t.Errorf("%s: bodies differ (nginx %d bytes, ours %d)", name, len(ngxBody), len(ourBody))
		}
	}
	t.Logf("%d differential cases, nginx statuses %v", len(cases), statuses)
	// Guard against a vacuous comparison: every outcome must be exercised.
	for _, st := range []int{200, 206, 301, 304, 403, 404, 412, 416} {
		if statuses[st] == 0 {
			t.Errorf("no case produced status %d", st)
		}
	}
}

// sameHeader compares header values, allowing the time-relative Expires
// and max-age values to differ by the couple of seconds between the two
// responses.
func sameHeader(name string, a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		switch name {
		case "Expires":
			x, y := ParseHTTPTime([]byte(a[i])), ParseHTTPTime([]byte(b[i]))
			if x == -1 || y == -1 || x-y > 2 || y-x > 2 {
				return false
			}
		case "Cache-Control":
			x, e1 := strconv.ParseInt(strings.TrimPrefix(a[i], "max-age="), 10, 64)
			y, e2 := strconv.ParseInt(strings.TrimPrefix(b[i], "max-age="), 10, 64)
			if e1 != nil || e2 != nil || x-y > 2 || y-x > 2 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const nginxBin = "/usr/sbin/nginx"

// The message may contain newlines (an escaped "\n" in a value): it ends
// where nginx's next line starts.
var emergRE = regexp.MustCompile(`\[emerg\] (?:\d+#\d+: )?((?s).*?)\n(?:nginx: |\d{4}/\d\d/\d\d |$)`)

// runNginx runs "nginx -T" (test and dump) on dir/conf with -p dir and the
// -g parameters we always need (pid and error log away from system paths).
// It returns nginx's first [emerg] message ("" when nginx accepted the
// configuration) and its stdout (the -T dump).
func runNginx(t *testing.T, dir, conf, globals string) (emerg, dump string) {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skip("nginx binary not installed; differential test skipped")
	}
	emerg, dump, err := execNginx(dir, conf, globals)
	if err != nil {
		t.Fatal(err)
	}
	return emerg, dump
}

// execNginx is runNginx without *testing.T, for use from goroutines.
func execNginx(dir, conf, globals string) (emerg, dump string, err error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(nginxBin, "-T", "-p", dir, "-c", conf, "-g", globals)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if m := emergRE.FindStringSubmatch(stderr.String()); m != nil {
		return m[1], stdout.String(), nil
	}
	if runErr != nil {
		return "", "", fmt.Errorf("nginx failed without [emerg]: %v\n%s", runErr, stderr.String())
	}
	return "", stdout.String(), nil
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type diffCase struct {
	name    string
	files   map[string]string // "nginx.conf" is the main file
	globals string            // extra -g directives
	conf    string            // -c argument; default DIR/nginx.conf
	// nginxOK states what real nginx does with the case, so a case meant
	// to exercise an error cannot pass vacuously.
	nginxOK bool
	// ours, when set, is edgeproxy's own verdict for a configuration nginx
	// accepts (a directive edgeproxy does not implement); "DIR" stands for
	// the test directory.
	ours string
}

const httpHead = "events {}\nhttp {\n"

func runDiff(t *testing.T, tc diffCase) {
	dir := t.TempDir()
	writeFiles(t, dir, tc.files)
	conf := tc.conf
	if conf == "" {
		conf = dir + "/nginx.conf"
	}
	globals := "pid " + dir + "/nginx.pid; error_log stderr; " + tc.globals
	emerg, dump := runNginx(t, dir, conf, globals)
	if (emerg == "") != tc.nginxOK {
		t.Fatalf("nginx verdict %q, test expects ok=%v; fix the test case", emerg, tc.nginxOK)
	}

	cfg, err := Load(conf, Options{Prefix: dir, Globals: globals})
	var got string
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Load error %v is not *Error", err)
		}
		got = e.Error()
	}
	want := emerg
	if tc.ours != "" {
		want = strings.ReplaceAll(tc.ours, "DIR", dir)
	}
	if got != want {
		t.Fatalf("Load error:\n got: %q\nwant: %q (nginx: %q)", got, want, emerg)
	}
	if err == nil {
		var b bytes.Buffer
		if err := Dump(&b, cfg); err != nil {
			t.Fatal(err)
		}
		if b.String() != dump {
			t.Errorf("Dump differs from nginx -T:\n got: %q\nwant: %q", b.String(), dump)
		}
	}
}

// TestNginxDifferential runs real nginx -t on each configuration and
// requires Load to produce the very same message and location (or to accept
// it and dump the same files as nginx -T).
func TestNginxDifferential(t *testing.T) {
	long := strings.Repeat("y", 5000)
	cases := []diffCase{
		// --- valid configurations ---
		{name: "minimal", nginxOK: true, files: map[string]string{"nginx.conf": "events {}\n"}},
		{name: "typical static site", nginxOK: true, files: map[string]string{
			"nginx.conf": "worker_processes auto;\nevents { worker_connections 512; }\n" + "http {\n include mime.types;\n default_type application/octet-stream;\n" +
				" keepalive_timeout 65s;\n server_tokens off;\n server {\n  listen 8080 default_server;\n  server_name a#b \"\" 'x y';\n" +
				"  root html;\n  index index.html;\n  location = /50x.html { internal; }\n  location ^~ /static/ { expires 30d; add_header X-A \"1;2\"; }\n" +
				"  location ~* \\.(png|jpe?g)$ { try_files $uri =404; }\n  location @fallback { return 302 /; }\n  error_page 500 502 /50x.html;\n }\n}\n",
			"mime.types": "types {\n text/html html htm;\n image/png png;\n}\n"}},
		{name: "includes with glob sorted like glob(3), relative to conf dir", nginxOK: true, files: map[string]string{
			"nginx.conf":          httpHead + " include conf.d/*.conf;\n include conf.d/none*.conf;\n}\n",
			"conf.d/b.conf":       "server { listen 8081; }\n",
			"conf.d/a-b.conf":     "server { listen 8082; include snippets/loc.inc; }\n", // relative to the main file's directory
			"conf.d/A.conf":       "server { listen 8083; }\n",
			"conf.d/.hidden.conf": "this is not read;\n",
			"snippets/loc.inc":    "location /x { root /srv; }\n",
		}},
		{name: "same file included twice is dumped once", nginxOK: true, files: map[string]string{
			"nginx.conf": httpHead + " include t.types;\n server { listen 8084; include t.types; }\n}\n",
			"t.types":    "types { text/plain txt; }\n"}},
		{name: "include inside types block", nginxOK: true, files: map[string]string{
			"nginx.conf": httpHead + " types { include more.types; text/css css; }\n}\n",
			"more.types": "text/html html;\n"}},
		{name: "relative -c resolves against -p", nginxOK: true, conf: "conf/main.conf", files: map[string]string{
			"conf/main.conf": "events {}\ninclude inc.conf;\n",
			"conf/inc.conf":  "worker_rlimit_nofile 1024;\n"}},

		// --- tokenizer errors ---
		{name: "unexpected close brace", files: map[string]string{"nginx.conf": "events {}\n}\n"}},
		{name: "eof in block", files: map[string]string{"nginx.conf": "events {}\nhttp {\n server {\n"}},
		{name: "eof in directive", files: map[string]string{"nginx.conf": "events {}\nworker_processes 1"}},
		{name: "eof in quote", files: map[string]string{"nginx.conf": "events {}\nworker_processes \"1;\n\n"}},
		{name: "lone semicolon", files: map[string]string{"nginx.conf": "events {}\n;\n"}},
		{name: "lone open brace", files: map[string]string{"nginx.conf": "events {}\n\n{\n"}},
		{name: "char after closing quote", files: map[string]string{"nginx.conf": "events {}\nhttp { root \"/a\"b; }\n"}},
		{name: "close brace after quote", files: map[string]string{"nginx.conf": "events {}\nhttp { root \"/a\"}\n"}},
		{name: "close brace with pending args", files: map[string]string{"nginx.conf": "events {}\nhttp { root /a }\n"}},
		{name: "too long word", files: map[string]string{"nginx.conf": "events {}\nhttp { root " + long + "; }\n"}},
		{name: "too long quoted", files: map[string]string{"nginx.conf": "events {}\nhttp { root \"" + long + "\"; }\n"}},
		{name: "too long comment", files: map[string]string{"nginx.conf": "events {}\n#" + long + "\n"}},
		{name: "word of 4095 bytes is fine", nginxOK: true, files: map[string]string{"nginx.conf": "events {}\nhttp { server { server_name " + strings.Repeat("z", 4095) + "; } }\n"}},
		{name: "open brace in types", files: map[string]string{"nginx.conf": httpHead + " types {\n text/html html {\n }\n }\n}\n"}},

		// --- escapes: the flag error echoes the argument as nginx stored it ---
		{name: "escapes in double quotes", files: map[string]string{"nginx.conf": "events {}\nhttp { sendfile \"a\\\"b\\'c\\\\d\\te\\nf\\rg\\x\"; }\n"}},
		{name: "escapes in single quotes", files: map[string]string{"nginx.conf": "events {}\nhttp { sendfile 'a\\'b\"c'; }\n"}},
		{name: "escapes outside quotes", files: map[string]string{"nginx.conf": "events {}\nhttp { sendfile a\\ b\\;c\\\"d\\{; }\n"}},
		{name: "brace variable in word", files: map[string]string{"nginx.conf": "events {}\nhttp { sendfile x${a}{b}; }\n"}},
		{name: "hash inside word", files: map[string]string{"nginx.conf": "events {}\nhttp { sendfile a#b; }\n"}},
		{name: "escaped name is unknown directive", files: map[string]string{"nginx.conf": "events {}\nfoo\\\"bar;\n"}},
		{name: "NUL byte truncates name in message", files: map[string]string{"nginx.conf": "events {}\nfoo\x00bar;\n"}},

		// --- directive table errors ---
		{name: "unknown directive", files: map[string]string{"nginx.conf": "events {}\nhttp {\n server {\n  foo bar;\n }\n}\n"}},
		{name: "quoted unknown directive", files: map[string]string{"nginx.conf": "events {}\n\"foo bar\";\n"}},
		{name: "not allowed here", files: map[string]string{"nginx.conf": httpHead + " server {\n  alias /x;\n }\n}\n"}},
		{name: "event directive in http", files: map[string]string{"nginx.conf": httpHead + " worker_connections 10;\n}\n"}},
		{name: "invalid number of arguments", files: map[string]string{"nginx.conf": httpHead + " server {\n  listen\n   ;\n }\n}\n"}},
		{name: "too many args for TAKEn", files: map[string]string{"nginx.conf": httpHead + " server { location a b c {} }\n}\n"}},
		{name: "flag invalid value", files: map[string]string{"nginx.conf": httpHead + " sendfile yes;\n}\n"}},
		{name: "flag is case-insensitive", nginxOK: true, files: map[string]string{"nginx.conf": httpHead + " tcp_nodelay ON;\n server_tokens off;\n}\n"}},
		{name: "duplicate root", files: map[string]string{"nginx.conf": httpHead + " server {\n  root /a;\n  root /b;\n }\n}\n"}},
		{name: "alias after root", files: map[string]string{"nginx.conf": httpHead + " server { location / {\n  root /a;\n  alias /b;\n }}\n}\n"}},
		{name: "root in http and server is no duplicate", nginxOK: true, files: map[string]string{"nginx.conf": httpHead + " root /a;\n server { root /b; }\n}\n"}},
		{name: "duplicate http", files: map[string]string{"nginx.conf": "events {}\nhttp {}\nhttp {}\n"}},
		{name: "duplicate events", files: map[string]string{"nginx.conf": "events {}\nevents {}\n"}},
		{name: "duplicate flag", files: map[string]string{"nginx.conf": httpHead + " tcp_nodelay on;\n tcp_nodelay off;\n}\n"}},
		{name: "duplicate keepalive_timeout", files: map[string]string{"nginx.conf": httpHead + " keepalive_timeout 5;\n keepalive_timeout 6;\n}\n"}},
		{name: "duplicate worker_connections", files: map[string]string{"nginx.conf": "events {\n worker_connections 1;\n worker_connections 2;\n}\n"}},
		{name: "duplicate limit_except", files: map[string]string{"nginx.conf": httpHead + " server { location / {\n limit_except GET {}\n limit_except POST {}\n }}\n}\n"}},
		{name: "location without block", files: map[string]string{"nginx.conf": httpHead + " server {\n  location /;\n }\n}\n"}},
		{name: "non-block with block", files: map[string]string{"nginx.conf": httpHead + " sendfile on {}\n}\n"}},
		{name: "location in if is not allowed", files: map[string]string{"nginx.conf": httpHead + " server { if ($a) {\n location / {}\n }}\n}\n"}},
		{name: "server in upstream takes args", files: map[string]string{"nginx.conf": httpHead + " upstream u {\n  server;\n }\n}\n"}},
		{name: "worker_processes invalid value", files: map[string]string{"nginx.conf": "events {}\nworker_processes many;\n"}},
		{name: "no events section", files: map[string]string{"nginx.conf": "worker_processes 1;\n"}},
		{name: "table error before later syntax error wins", files: map[string]string{"nginx.conf": httpHead + " sendfile maybe;\n server {\n"}},
		{name: "syntax error before later table error wins", files: map[string]string{"nginx.conf": httpHead + " root \"/a\"x;\n foo;\n}\n"}},

		// --- includes ---
		{name: "missing include", files: map[string]string{"nginx.conf": httpHead + "\n include nope.conf;\n}\n"}},
		{name: "missing absolute include", files: map[string]string{"nginx.conf": httpHead + " include /nonexistent/x.conf;\n}\n"}},
		{name: "error inside included file", files: map[string]string{
			"nginx.conf":    httpHead + " include conf.d/*.conf;\n}\n",
			"conf.d/a.conf": "server {\n listen 80;\n}\n",
			"conf.d/b.conf": "server {\n\n server_name\n;\n}\n"}},
		{name: "unbalanced brace in included file", files: map[string]string{
			"nginx.conf": httpHead + " server {\n include loc.inc;\n }\n}\n",
			"loc.inc":    "location / {\n"}},
		{name: "close brace in included file", files: map[string]string{
			"nginx.conf": httpHead + " server {\n include loc.inc;\n}\n",
			"loc.inc":    "}\n"}},
		{name: "include context is the includer's", files: map[string]string{
			"nginx.conf": "include ev.inc;\n",
			"ev.inc":     "events {}\nlisten 80;\n"}},
		{name: "missing main file", conf: "/nonexistent/nginx.conf"},

		// --- -g globals ---
		{name: "global duplicated in file", globals: "worker_processes 2;", files: map[string]string{"nginx.conf": "events {}\nworker_processes 3;\n"}},
		{name: "pid from -g duplicated in file", files: map[string]string{"nginx.conf": "events {}\n\npid /tmp/x.pid;\n"}},
		{name: "unknown directive in -g", globals: "foo;", files: map[string]string{"nginx.conf": "events {}\n"}},
		{name: "block in -g", globals: "events {}", files: map[string]string{"nginx.conf": "events {}\n"}},
		{name: "unterminated -g", globals: "daemon off", files: map[string]string{"nginx.conf": "events {}\n"}},
		{name: "-g directive not allowed in main", globals: "listen 80;", files: map[string]string{"nginx.conf": "events {}\n"}},
		{name: "-g ok", nginxOK: true, globals: "daemon off; worker_processes 2;", files: map[string]string{"nginx.conf": "events {}\n"}},

		// --- edgeproxy's own verdicts on configurations nginx accepts ---
		{name: "rewrite not supported", nginxOK: true, ours: `"rewrite" directive is not supported by edgeproxy in DIR/nginx.conf:4`,
			files: map[string]string{"nginx.conf": httpHead + " server {\n  rewrite ^/a /b;\n }\n}\n"}},
		{name: "autoindex on not supported", nginxOK: true, ours: `"autoindex on" is not supported by edgeproxy, only "autoindex off" in DIR/nginx.conf:3`,
			files: map[string]string{"nginx.conf": httpHead + " autoindex on;\n}\n"}},
		{name: "not supported in -g", nginxOK: true, globals: "env FOO;", ours: `"env" directive is not supported by edgeproxy in command line`,
			files: map[string]string{"nginx.conf": "events {}\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runDiff(t, tc)
		})
	}
}

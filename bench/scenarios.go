package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

//go:embed scenarios/*.conf
var scenarioFS embed.FS

type scenarioKind int

const (
	// loadWrk: wrk drives keep-alive load at path; req/s, latency, CPU, RSS.
	loadWrk scenarioKind = iota
	// loadIdle: the harness opens many idle keep-alive connections; RSS.
	loadIdle
)

// scenario describes one comparison. The conf template is rendered once per
// scenario and the very same bytes are given to both servers.
type scenario struct {
	name        string
	desc        string
	conf        string // template file under bench/scenarios/
	kind        scenarioKind
	path        string           // request path for wrk / the idle client
	files       map[string]int64 // doc-root files to create: name -> size
	connections int              // wrk connections; 0 = -connections flag
	throughput  bool             // also report MB/s
	backend     bool             // start the loopback Go backend (-backend mode)
	gunicorn    bool             // with backend: a Flask app under Gunicorn instead
	anyStatus   bool             // non-2xx answers are the point (rejections)
	gzip        bool             // wrk sends Accept-Encoding: gzip
	attack      string           // "slowloris" / "slowread": hostile connections during the measured run
	attackPath  string           // what the attackers request
	tls         string           // "ec" or "rsa": serve https with that certificate (cert.pem/key.pem)
	newConn     bool             // a new connection per request (full handshakes over TLS)

	// offConf turns the scenario into an on/off comparison of ONE server
	// (self): A runs conf, B runs offConf, interleaved like A/B rounds, so
	// the req/s ratio is what the feature costs (e.g. the access log).
	offConf string
	self    serverKind
	redis   bool   // start a loopback redis-server ({{.RedisPort}})
	script  string // wrk Lua code put before doneLua (e.g. a request() that varies the path)
}

// templateData is what a scenario template can use.
type templateData struct {
	Port        int    // listen port of the server under test
	Tmp         string // the prefix (-p) directory
	DocRoot     string // Tmp/docroot
	BackendPort int    // port of the loopback backend (backend scenarios)
	RedisPort   int    // port of the loopback redis-server (redis scenarios)
}

// scenarios is the registry. To add a scenario, drop a template into
// bench/scenarios/ (it must work unchanged under nginx: worker_processes 1,
// access_log off, listen 127.0.0.1:{{.Port}}) and append an entry here.
var scenarios = []scenario{
	{name: "return200", desc: `location / { return 200 "ok"; }`, conf: "return200.conf", kind: loadWrk, path: "/"},
	{name: "returnlog", desc: `return200 with access_log (combined) to a file`, conf: "log.conf", kind: loadWrk, path: "/"},
	{name: "static1k", desc: "1 KiB static file", conf: "static.conf", kind: loadWrk, path: "/1k.bin",
		files: map[string]int64{"1k.bin": 1 << 10}},
	{name: "static1m", desc: "1 MiB static file", conf: "static.conf", kind: loadWrk, path: "/1m.bin",
		files: map[string]int64{"1m.bin": 1 << 20}, throughput: true},
	{name: "static64m", desc: "64 MiB static file, 4 connections", conf: "static.conf", kind: loadWrk, path: "/64m.bin",
		files: map[string]int64{"64m.bin": 64 << 20}, connections: 4, throughput: true},
	{name: "limitreject", desc: "limit_req 1 r/s: nearly every request rejected (503)", conf: "limit.conf", kind: loadWrk, path: "/limited",
		files: map[string]int64{"1k.bin": 1 << 10}, anyStatus: true},
	{name: "limitpass", desc: "limit_req with a rate never reached: every request passes (1 KiB file)", conf: "limit.conf", kind: loadWrk, path: "/open",
		files: map[string]int64{"1k.bin": 1 << 10}},
	// On/off comparisons of one server: the access log's cost (target < 5 % req/s).
	{name: "logcost", desc: "edgeproxy with vs without the combined access log (A = log on, B = log off)", conf: "log.conf", offConf: "return200.conf",
		self: kindEdgeproxy, kind: loadWrk, path: "/"},
	{name: "logcost-nginx", desc: "nginx with vs without the combined access log (A = log on, B = log off)", conf: "log.conf", offConf: "return200.conf",
		self: kindNginx, kind: loadWrk, path: "/"},
	// The fleet mode's cost (target < 10 % req/s): the same limited location
	// with the zone synced through Redis (A) and local (B).
	{name: "fleetcost", desc: "edgeproxy limit_req zone with vs without redis= (A = fleet-wide, B = local); 1 KiB file, rate never reached", conf: "limitfleet.conf", offConf: "limit.conf",
		self: kindEdgeproxy, kind: loadWrk, path: "/open", files: map[string]int64{"1k.bin": 1 << 10}, redis: true},
	{name: "idle10k", desc: "10,000 idle keep-alive connections (after one GET each)", conf: "idle10k.conf", kind: loadIdle, path: "/"},

	// Proxy scenarios: a loopback Go backend, upstream keepalive on both sides.
	{name: "proxy100b", desc: "proxy_pass to a Go backend, 100 B body, upstream keepalive", conf: "proxy.conf", kind: loadWrk, path: "/100b", backend: true},
	{name: "cachehit", desc: "proxy_cache hit of a 10 KiB response (seed cache block)", conf: "cache.conf", kind: loadWrk, path: "/10k", backend: true},
	{name: "cachemix", desc: "proxy_cache, 90% hits of one 10 KiB response, 10% misses (unique query strings)", conf: "cache.conf", kind: loadWrk, path: "/10k", backend: true,
		script: mixLua},
	{name: "gzip10k", desc: "10 KiB text through the proxy, gzip_comp_level 6 (client sends Accept-Encoding: gzip)", conf: "gzip.conf", kind: loadWrk, path: "/10k", backend: true, gzip: true},
	{name: "proxy10k", desc: "proxy_pass to a Go backend, 10 KiB body, upstream keepalive", conf: "proxy.conf", kind: loadWrk, path: "/10k", backend: true},
	{name: "slowloris", desc: "return200 measured while 10,000 connections trickle request heads (1 byte/s each)", conf: "attack.conf", kind: loadWrk, path: "/", attack: "slowloris", attackPath: "/"},
	{name: "slowread", desc: "return200 measured while 10,000 connections read a 1 MiB file at 1 byte/s", conf: "attack.conf", kind: loadWrk, path: "/", attack: "slowread", attackPath: "/1m.bin",
		files: map[string]int64{"1m.bin": 1 << 20}},
	{name: "proxygunicorn", desc: "proxy_pass to a Flask app under Gunicorn (2 sync workers), 100 B body", conf: "proxy.conf", kind: loadWrk, path: "/100b", backend: true, gunicorn: true, connections: 16},

	// TLS scenarios: return 200 over TLS 1.3.
	{name: "tlsecdsa", desc: "full TLS 1.3 handshake per request, ECDSA P-256 certificate (Connection: close, resumption off)", conf: "tlsfull.conf", kind: loadWrk, path: "/",
		tls: "ec", newConn: true},
	{name: "tlsrsa", desc: "full TLS 1.3 handshake per request, RSA-2048 certificate (Connection: close, resumption off)", conf: "tlsfull.conf", kind: loadWrk, path: "/",
		tls: "rsa", newConn: true},
	{name: "tlsresume", desc: "resumed TLS 1.3 handshake (session ticket) per request, ECDSA (Connection: close; wrk offers its last session)", conf: "tls.conf", kind: loadWrk, path: "/",
		tls: "ec", newConn: true},
	{name: "tlskeepalive", desc: "return 200 over TLS 1.3 keep-alive connections (wrk)", conf: "tls.conf", kind: loadWrk, path: "/", tls: "ec"},
}

// mixLua makes every 10th request a cache miss: a query string unique to
// this wrk run (random prefix, counter), so no round or warm-up finds it
// cached, not even nginx's on-disk cache that survives its restarts.
const mixLua = `-- cachemix: 90% hits, 10% misses
math.randomseed(os.time())
local run = math.random(1, 2147483647)
local n = 0
request = function()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format(nil, "/10k?miss=" .. run .. "-" .. n)
  end
  return wrk.format(nil, "/10k")
end
`

func scenarioNames() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return n
}

func selectScenarios(list string) ([]scenario, error) {
	if strings.TrimSpace(list) == "" || list == "all" {
		return scenarios, nil
	}
	var out []scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, s := range scenarios {
			if s.name == name {
				out = append(out, s)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(scenarioNames(), ","))
		}
	}
	return out, nil
}

// renderConf renders a scenario template.
func renderConf(file string, d templateData) ([]byte, error) {
	src, err := scenarioFS.ReadFile("scenarios/" + file)
	if err != nil {
		return nil, err
	}
	t, err := template.New(file).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeDocFile creates a file of exactly size bytes with printable content.
func writeDocFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	chunk := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_\n"), 1024) // 64 KiB
	for left := size; left > 0; {
		n := min(left, int64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}

// prepareDir creates the per-scenario prefix directory (readable by nginx's
// unprivileged worker user) with its doc root, files and wrk script.
func prepareDir(sc scenario) (string, error) {
	tmp, err := os.MkdirTemp("", "edgeproxy-bench-"+sc.name+"-")
	if err != nil {
		return "", err
	}
	docroot := filepath.Join(tmp, "docroot")
	if err := os.Mkdir(docroot, 0o755); err != nil {
		return tmp, err
	}
	// MkdirTemp makes 0700; nginx workers run as nobody when started as root.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return tmp, err
	}
	for name, size := range sc.files {
		if err := writeDocFile(filepath.Join(docroot, name), size); err != nil {
			return tmp, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "done.lua"), []byte(sc.script+doneLua), 0o644); err != nil {
		return tmp, err
	}
	if sc.tls != "" {
		if err := writeBenchCert(tmp, sc.tls == "rsa"); err != nil {
			return tmp, err
		}
	}
	return tmp, nil
}

// wrkHeaders are the extra request headers of a scenario.
func (sc *scenario) wrkHeaders() []string {
	var h []string
	if sc.gzip {
		h = append(h, "Accept-Encoding: gzip")
	}
	if sc.newConn {
		// wrk reconnects after every response; it never resumes a TLS
		// session, so each request costs a full handshake.
		h = append(h, "Connection: close")
	}
	return h
}

// writeBenchCert writes a self-signed server certificate and its key as
// cert.pem and key.pem in dir: ECDSA P-256 or RSA-2048.
func writeBenchCert(dir string, rsaKey bool) error {
	var priv, pub any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		priv, pub = k, &k.PublicKey
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		priv, pub = k, &k.PublicKey
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bench.test"},
		DNSNames:     []string{"bench.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	// nginx reads the key as root, before its worker drops privileges.
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

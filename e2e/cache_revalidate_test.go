package e2e

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// validatorApp answers with validators and honours conditional requests,
// counting what it sees: full responses, 304s, and the conditional and
// range headers that reached it.
type validatorApp struct {
	addr string
	mu   sync.Mutex
	full map[string]int
	not  map[string]int
	seen map[string][]string // path -> "INM|IMS|Range" per request
	slow time.Duration
}

const rvLastModified = "Tue, 01 Sep 2026 10:00:00 GMT"

func startValidatorApp(t *testing.T) *validatorApp {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &validatorApp{addr: l.Addr().String(), full: map[string]int{}, not: map[string]int{}, seen: map[string][]string{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		inm, ims := r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
		a.mu.Lock()
		a.seen[p] = append(a.seen[p], inm+"|"+ims+"|"+r.Header.Get("Range"))
		slow := a.slow
		a.mu.Unlock()
		if strings.HasPrefix(p, "/slow/") {
			time.Sleep(slow)
		}
		notModified := false
		switch {
		case strings.HasSuffix(p, "/etag"):
			// The 304 gives the refreshed entry its own lifetime.
			w.Header().Set("ETag", `"e1"`)
			notModified = inm == `"e1"`
			if notModified {
				w.Header().Set("Cache-Control", "max-age=30")
			} else {
				w.Header().Set("Cache-Control", "max-age=3")
			}
		case strings.HasSuffix(p, "/lm"):
			w.Header().Set("Last-Modified", rvLastModified)
			notModified = ims == rvLastModified
		case strings.Contains(p, "/ar"):
			w.Header().Set("Accept-Ranges", "bytes")
			w.Header().Set("ETag", `"r1"`)
			w.Header().Set("Last-Modified", rvLastModified)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		case strings.HasSuffix(p, "/changed"):
			a.mu.Lock()
			w.Header().Set("ETag", fmt.Sprintf(`"c%d"`, a.full[p]+1))
			a.mu.Unlock()
		}
		a.mu.Lock()
		if notModified {
			a.not[p]++
		} else {
			a.full[p]++
		}
		n := a.full[p]
		a.mu.Unlock()
		if notModified {
			w.WriteHeader(304)
			return
		}
		fmt.Fprintf(w, "%s #%d\n", p, n)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *validatorApp) counts(p string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprintf("full=%d 304=%d seen=%q", a.full[p], a.not[p], a.seen[p])
}

const revalidateConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    proxy_cache_path {{.Tmp}}/cache levels=1:2 keys_zone=rv:10m;
    server {
        listen 127.0.0.1:{{.Port}};
        proxy_cache rv;
        proxy_cache_valid 200 3s;
        add_header X-Proxy-Cache $upstream_cache_status;
        location /rv/ {
            proxy_pass http://APP;
            proxy_cache_revalidate on;
        }
        location /ranges/ {
            proxy_pass http://APP;
            proxy_cache_valid 200 1m;
        }
        location /norv/ {
            proxy_pass http://APP;
        }
        location /upd/ {
            proxy_pass http://APP;
            proxy_cache_use_stale updating;
        }
        location /slow/ {
            proxy_pass http://APP;
            proxy_cache_use_stale updating;
            proxy_cache_lock on;   # locks misses only: an expired entry gives UPDATING
        }
        location /bg/ {
            proxy_pass http://APP;
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;
            proxy_cache_revalidate on;
        }
    }
}
`

type cacheStep struct {
	name, raw string
	pause     time.Duration // before the request
}

// runCacheSteps sends the same sequence to both servers (each step to
// nginx, then to edgeproxy) and compares status, X-Proxy-Cache and body.
func runCacheSteps(t *testing.T, ngx, edge *server, steps []cacheStep) {
	t.Helper()
	for _, s := range steps {
		time.Sleep(30*time.Millisecond + s.pause) // ristretto admits asynchronously
		t0 := time.Now()
		head := strings.HasPrefix(s.raw, "HEAD")
		a := roundTrip(t, ngx.Addr, s.raw, head)
		b := roundTrip(t, edge.Addr, s.raw, head)
		if a.Status != b.Status || a.Header.Get("X-Proxy-Cache") != b.Header.Get("X-Proxy-Cache") || string(a.Body) != string(b.Body) {
			t.Errorf("%s: nginx %d %q %q, edgeproxy %d %q %q", s.name, a.Status, a.Header.Get("X-Proxy-Cache"), a.Body,
				b.Status, b.Header.Get("X-Proxy-Cache"), b.Body)
		}
		if d := time.Since(t0); d > time.Second {
			t.Logf("%s: slow step (%v)", s.name, d)
		}
	}
}

// expiry waits out the 3s lifetimes for nginx too: it keeps time in whole
// seconds (valid_sec = now + 3, expired when valid_sec < now). Each step
// takes ~0.3 s (roundTrip checks whether the connection closes).
const expiry = 4100 * time.Millisecond

// proxy_cache_revalidate: an expired entry is fetched with its ETag or
// Last-Modified; the app's 304 refreshes it (REVALIDATED, the stored body),
// a changed resource replaces it (EXPIRED). The conditional and Range
// headers of clients never reach the app from a cached location.
func TestProxyCacheRevalidateDifferential(t *testing.T) {
	appN, appE := startValidatorApp(t), startValidatorApp(t)
	nginxBinary(t)
	ngx := start(t, "nginx", strings.ReplaceAll(revalidateConf, "APP", appN.addr), t.TempDir())
	edge := start(t, "edgeproxy", strings.ReplaceAll(revalidateConf, "APP", appE.addr), t.TempDir())
	runCacheSteps(t, ngx, edge, []cacheStep{
		// Hit checks come right after what they check: a step takes
		// ~0.3 s, more on a loaded machine, and lifetimes are 3 s.
		{name: "etag-miss", raw: get("/rv/etag")},
		{name: "etag-hit", raw: get("/rv/etag")},
		{name: "lm-miss", raw: get("/rv/lm")},
		{name: "changed-miss", raw: get("/rv/changed")},
		{name: "norv-miss", raw: get("/norv/etag")},
		{name: "client-conditional-miss", raw: get("/rv/strip/etag", "If-None-Match: \"e1\"\r\nRange: bytes=0-1\r\n")},
		// The lm entry's refreshed lifetime is proxy_cache_valid's 3s.
		{name: "lm-revalidated", raw: get("/rv/lm"), pause: expiry},
		{name: "lm-hit-after", raw: get("/rv/lm")},
		{name: "etag-revalidated", raw: get("/rv/etag")},
		{name: "changed-expired", raw: get("/rv/changed")},
		{name: "norv-expired", raw: get("/norv/etag")},
		{name: "etag-hit-after", raw: get("/rv/etag")},
		{name: "client-304-from-revalidated", raw: get("/rv/etag", "If-None-Match: \"e1\"\r\n")},
		{name: "head-hit", raw: "HEAD /rv/etag HTTP/1.1\r\nHost: x\r\n\r\n"},
	})
	for _, p := range []string{"/rv/etag", "/rv/lm", "/rv/changed", "/norv/etag", "/rv/strip/etag"} {
		if n, e := appN.counts(p), appE.counts(p); n != e {
			t.Errorf("app behind nginx saw %s: %s; behind edgeproxy: %s", p, n, e)
		}
	}
}

// proxy_cache_use_stale updating: while one request refreshes an expired
// entry from a slow app, the others get the stale entry at once
// (UPDATING); proxy_cache_background_update answers the refreshing
// request itself from the stale entry (STALE) and refreshes in the
// background (with proxy_cache_revalidate: a conditional request).
func TestProxyCacheUpdatingDifferential(t *testing.T) {
	appN, appE := startValidatorApp(t), startValidatorApp(t)
	nginxBinary(t)
	ngx := start(t, "nginx", strings.ReplaceAll(revalidateConf, "APP", appN.addr), t.TempDir())
	edge := start(t, "edgeproxy", strings.ReplaceAll(revalidateConf, "APP", appE.addr), t.TempDir())
	runCacheSteps(t, ngx, edge, []cacheStep{
		{name: "slow-miss", raw: get("/slow/changed")},
		{name: "bg-miss", raw: get("/bg/changed")},
		{name: "bg-etag-miss", raw: get("/bg/etag")},
		{name: "bg-stale", raw: get("/bg/changed"), pause: expiry},
		{name: "bg-etag-stale", raw: get("/bg/etag")},
		{name: "bg-hit-new", raw: get("/bg/changed")},
		{name: "bg-etag-hit", raw: get("/bg/etag")},
	})
	appN.mu.Lock()
	appN.slow = 1500 * time.Millisecond
	appN.mu.Unlock()
	appE.mu.Lock()
	appE.slow = 1500 * time.Millisecond
	appE.mu.Unlock()
	// The slow entry expired during the steps above.
	type res struct{ a, b, c reply }
	run := func(s *server) res {
		var r res
		done := make(chan struct{})
		go func() {
			r.a = roundTrip(t, s.Addr, get("/slow/changed"), false)
			close(done)
		}()
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		r.b = roundTrip(t, s.Addr, get("/slow/changed"), false)
		if d := time.Since(start); d > 1100*time.Millisecond {
			t.Errorf("%s: the UPDATING request took %v (waited for the update)", s.Name, d)
		}
		<-done
		time.Sleep(200 * time.Millisecond) // ristretto admits asynchronously
		r.c = roundTrip(t, s.Addr, get("/slow/changed"), false)
		return r
	}
	rn, re := run(ngx), run(edge)
	for i, pair := range [][2]reply{{rn.a, re.a}, {rn.b, re.b}, {rn.c, re.c}} {
		a, b := pair[0], pair[1]
		if a.Status != b.Status || a.Header.Get("X-Proxy-Cache") != b.Header.Get("X-Proxy-Cache") || string(a.Body) != string(b.Body) {
			t.Errorf("slow request %d: nginx %d %q %q, edgeproxy %d %q %q", i, a.Status, a.Header.Get("X-Proxy-Cache"), a.Body,
				b.Status, b.Header.Get("X-Proxy-Cache"), b.Body)
		}
	}
	for _, p := range []string{"/slow/changed", "/bg/changed", "/bg/etag"} {
		if n, e := appN.counts(p), appE.counts(p); n != e {
			t.Errorf("app behind nginx saw %s: %s; behind edgeproxy: %s", p, n, e)
		}
	}
}

// Byte ranges of a cached response (the app sent Accept-Ranges): a single
// range on the MISS, single and multipart ranges and 416 on HITs, If-Range;
// without Accept-Ranges the whole response.
func TestProxyCacheRangesDifferential(t *testing.T) {
	appN, appE := startValidatorApp(t), startValidatorApp(t)
	nginxBinary(t)
	ngx := start(t, "nginx", strings.ReplaceAll(revalidateConf, "APP", appN.addr), t.TempDir())
	edge := start(t, "edgeproxy", strings.ReplaceAll(revalidateConf, "APP", appE.addr), t.TempDir())
	boundary := regexp.MustCompile(`[0-9]{20}`)
	for _, s := range []cacheStep{
		{name: "miss-single", raw: get("/ranges/ar1", "Range: bytes=0-3\r\n")},
		{name: "hit-single", raw: get("/ranges/ar1", "Range: bytes=2-5\r\n")},
		{name: "hit-suffix", raw: get("/ranges/ar1", "Range: bytes=-4\r\n")},
		{name: "hit-multi", raw: get("/ranges/ar1", "Range: bytes=0-1,5-6\r\n")},
		{name: "hit-416", raw: get("/ranges/ar1", "Range: bytes=100-\r\n")},
		{name: "hit-whole", raw: get("/ranges/ar1")},
		{name: "if-range-date", raw: get("/ranges/ar1", "Range: bytes=1-2\r\nIf-Range: "+rvLastModified+"\r\n")},
		{name: "if-range-etag-match", raw: get("/ranges/ar1", "Range: bytes=1-2\r\nIf-Range: \"r1\"\r\n")},
		{name: "if-range-etag-mismatch", raw: get("/ranges/ar1", "Range: bytes=1-2\r\nIf-Range: \"zz\"\r\n")},
		{name: "head-range", raw: "HEAD /ranges/ar1 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n"},
		{name: "miss-multi", raw: get("/ranges/ar2", "Range: bytes=0-1,5-6\r\n")},
		{name: "no-accept-ranges-miss", raw: get("/ranges/etag", "Range: bytes=0-1\r\n")},
		{name: "no-accept-ranges-hit", raw: get("/ranges/etag", "Range: bytes=0-1\r\n")},
	} {
		time.Sleep(30 * time.Millisecond)
		head := strings.HasPrefix(s.raw, "HEAD")
		a := roundTrip(t, ngx.Addr, s.raw, head)
		b := roundTrip(t, edge.Addr, s.raw, head)
		for _, h := range []string{"X-Proxy-Cache", "Content-Type", "Content-Range", "Content-Length", "Accept-Ranges", "Last-Modified", "ETag"} {
			if h == "Content-Length" && a.Status == 416 {
				continue // the error pages name the product
			}
			if av, bv := boundary.ReplaceAllString(a.Header.Get(h), "B"), boundary.ReplaceAllString(b.Header.Get(h), "B"); av != bv {
				t.Errorf("%s: %s: nginx %q, edgeproxy %q", s.name, h, av, bv)
			}
		}
		ab, bb := boundary.ReplaceAllString(normBody(a.Body), "B"), boundary.ReplaceAllString(normBody(b.Body), "B")
		if a.Status != b.Status || ab != bb {
			t.Errorf("%s: nginx %d %q, edgeproxy %d %q", s.name, a.Status, ab, b.Status, bb)
		}
	}
}

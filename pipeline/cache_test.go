package pipeline

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"edgeproxy/cachestore"
)

func cacheConf(t testing.TB) string {
	dir := t.TempDir()
	return `error_log ` + dir + `/error.log; events {} http { keepalive_requests 1000000000; access_log off;
		proxy_cache_path ` + dir + `/cache keys_zone=z:1m;
		server { listen 127.0.0.1:8080;
			location /c/ { proxy_pass http://127.0.0.1:1; proxy_cache z; proxy_cache_valid 200 10m;
				add_header X-Proxy-Cache $upstream_cache_status; }
		} }`
}

// seedCache stores body under /c/x's cache key (default key:
// $scheme$proxy_host$request_uri) and waits until the zone serves it.
func seedCache(t testing.TB, c *Conn, path string, body string, acceptRanges bool) {
	t.Helper()
	z := c.snap.Listeners[0].Default.Locs[0].Cache.Zone
	if z == nil {
		t.Fatal("no cache zone")
	}
	key := []byte("http127.0.0.1:1" + path)
	e := cachestore.NewEntry(cachestore.EntrySpec{Key: key, Status: 200, Head: []byte("Content-Type: text/plain\r\nETag: \"v1\"\r\n"),
		Body: []byte(body), StoredAt: time.Now(), Decision: cachestore.Decision{Cacheable: true, TTL: time.Hour},
		ETag: []byte(`"v1"`), AcceptRanges: acceptRanges})
	for i := 0; i < 200; i++ {
		z.Set(e)
		if _, st := z.Get(key, cachestore.Hash(key), time.Now()); st == cachestore.Hit {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("entry never admitted")
}

// A cache hit, a 304 from the cache, a single range and a multipart range
// are answered on the loop without allocating.
func TestCacheHitZeroAllocs(t *testing.T) {
	c, ft := newTestConn(t, cacheConf(t))
	body := strings.Repeat("0123456789", 1000)
	seedCache(t, c, "/c/x", body, true)
	for _, tc := range []struct{ name, extra, want, wantBody string }{
		{"hit", "", "HTTP/1.1 200 OK\r\n", body},
		{"304", "If-None-Match: \"v1\"\r\n", "HTTP/1.1 304 Not Modified\r\n", ""},
		{"range", "Range: bytes=10-19\r\n", "HTTP/1.1 206 Partial Content\r\n", "0123456789"},
		{"multipart", "Range: bytes=0-1,5-6\r\n", "HTTP/1.1 206 Partial Content\r\n", "\r\n\r\n01\r\n--"},
	} {
		req := []byte("GET /c/x HTTP/1.1\r\nHost: a\r\nUser-Agent: test\r\n" + tc.extra + "\r\n")
		ft.out.Reset()
		c.Feed(req)
		out := ft.out.String()
		if !strings.HasPrefix(out, tc.want) || !strings.Contains(out, "X-Proxy-Cache: HIT\r\n") || !strings.Contains(out, tc.wantBody) {
			t.Fatalf("%s: %q", tc.name, clipOut(out))
		}
		if tc.name == "hit" && (!strings.HasSuffix(out, "\r\n\r\n"+body) || !strings.Contains(out, "Accept-Ranges: bytes\r\n")) {
			t.Fatalf("hit: %q", clipOut(out))
		}
		if raceEnabled {
			continue // allocation counts are not meaningful under -race
		}
		allocs := testing.AllocsPerRun(200, func() {
			ft.out.Reset()
			c.Feed(req)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request", tc.name, allocs)
		}
	}
}

func clipOut(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

func BenchmarkFeedCacheHit(b *testing.B) {
	c, ft := newTestConn(b, cacheConf(b))
	body := strings.Repeat("k", 10<<10)
	seedCache(b, c, "/c/x", body, false)
	req := []byte("GET /c/x HTTP/1.1\r\nHost: a\r\nUser-Agent: wrk\r\n\r\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ft.out.Reset()
		c.Feed(req)
	}
	if !bytes.HasPrefix(ft.out.Bytes(), []byte("HTTP/1.1 200 OK")) {
		b.Fatalf("unexpected output %q", ft.out.Bytes())
	}
}

// The small header parsers of the cache path never panic and agree with
// simple expectations on any input.
func FuzzCacheHeaderParsers(f *testing.F) {
	for _, s := range []string{`"v1"`, `W/"v1", "v2"`, `*`, ``, `,,`, `text/html; charset=utf-8`, `a; charset="x y"`, `charset=`} {
		f.Add([]byte(s), []byte(`"v1"`))
	}
	f.Fuzz(func(t *testing.T, list, etag []byte) {
		m := etagListMatch(list, etag)
		if len(etag) == 0 && m {
			t.Fatal("matched an empty ETag")
		}
		if bytes.Equal(list, etag) && len(etag) > 0 && !bytes.ContainsRune(etag, ',') && bytes.Equal(bytes.TrimSpace(etag), etag) && !m {
			t.Fatalf("%q does not match itself", etag)
		}
		if cs := charsetParam(list); cs != nil && !bytes.Contains(bytes.ToLower(list), []byte("charset=")) {
			t.Fatalf("charset %q from %q", cs, list)
		}
	})
}

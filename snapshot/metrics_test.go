package snapshot

import (
	"strings"
	"testing"
)

func TestStatusPagesAndStats(t *testing.T) {
	snap, _, err := compileText(t, `events {} http {
		server { listen 127.0.0.1:8181; stub_status off;
			location /a/ { location /a/b { } }
			location = /m { metrics; }
			location ~ \.php$ { }
			location @named { }
		}
		server { listen 127.0.0.1:8182; server_name stats.test; location / { brotli on; zstd_static always; } }
	}`)
	if err != nil {
		t.Fatal(err)
	}
	s := snap.Servers[0]
	if s.Root.StatusPage != StubStatus {
		t.Error(`"stub_status off" enables stub_status, as in nginx`)
	}
	labels := map[string]StatusPage{}
	for _, l := range s.Locs {
		if l.Stats == nil || l.Stats.Server != "127.0.0.1:8181" {
			t.Fatalf("location %q stats %+v", l.Pattern, l.Stats)
		}
		labels[l.Stats.Location] = l.StatusPage
	}
	want := map[string]StatusPage{"/a/": NoStatusPage, "/a/b": NoStatusPage, "= /m": PrometheusMetrics, `~ \.php$`: NoStatusPage, "@named": NoStatusPage}
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			t.Errorf("location %q: %v %v (all: %v)", k, got, ok, labels)
		}
	}
	l := snap.Servers[1].Locs[0]
	if l.Stats.Server != "stats.test" || !l.Brotli.On || l.Brotli.Level != 6 || l.Zstd.Static != GzipStaticAlways || l.Zstd.Level != 1 {
		t.Errorf("second server: %+v %+v %+v", l.Stats, l.Brotli, l.Zstd)
	}
	// Reloading the same config shares the counters.
	snap2, _, err := compileText(t, `events {} http { server { listen 127.0.0.1:8182; server_name stats.test; location / { } } }`)
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Servers[0].Locs[0].Stats != l.Stats {
		t.Error("a reload made new counters for the same server and location")
	}
	if _, _, err := compileText(t, `events {} http { server { metrics; } }`); err == nil || !strings.Contains(err.Error(), `"metrics" directive is not allowed here`) {
		t.Errorf("metrics at server level: %v", err)
	}
}

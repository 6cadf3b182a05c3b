package limiter

import (
	"strings"
	"testing"
)

// limit_conn_zone $binary_remote_addr zone=addr:1m; limit_conn addr 2;
func TestConnLimit(t *testing.T) {
	z := NewConnZone("addr", mib)
	key := []byte{10, 0, 0, 1}
	ok1, t1 := z.Acquire(key, 2)
	ok2, t2 := z.Acquire(key, 2)
	ok3, _ := z.Acquire(key, 2)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("limit 2: got %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if ok, _ := z.Acquire([]byte{10, 0, 0, 2}, 2); !ok {
		t.Fatal("another client is independent")
	}
	if z.Count(key) != 2 {
		t.Fatalf("count %d after a refusal, want 2 (refusals are not counted)", z.Count(key))
	}
	z.Release(t1)
	ok4, t4 := z.Acquire(key, 2)
	if !ok4 {
		t.Fatal("a finished request frees a slot")
	}
	z.Release(t2)
	z.Release(t4)
	if z.Count(key) != 0 || z.Len() != 1 {
		t.Fatalf("after all released: count %d, keys %d; want the node freed", z.Count(key), z.Len())
	}
	// The freed node's token, released again, must not touch anyone.
	z.Release(t4)
	if ok, _ := z.Acquire(key, 1); !ok {
		t.Fatal("double release corrupted the zone")
	}
}

func TestConnUntrackedKeys(t *testing.T) {
	z := NewConnZone("addr", mib)
	for i := 0; i < 3; i++ {
		ok, tok := z.Acquire(nil, 1)
		if !ok || tok != (ConnToken{}) {
			t.Fatal("empty key must not be limited")
		}
		z.Release(tok)
		ok, tok = z.Acquire([]byte(strings.Repeat("k", MaxConnKeyLen+1)), 1)
		if !ok || tok != (ConnToken{}) {
			t.Fatal("keys over 255 bytes are skipped like nginx")
		}
	}
	long := []byte(strings.Repeat("k", MaxConnKeyLen))
	if ok, _ := z.Acquire(long, 1); !ok {
		t.Fatal("255-byte key")
	}
	if ok, _ := z.Acquire(long, 1); ok {
		t.Fatal("255-byte key is limited")
	}
	if z.Len() != 1 {
		t.Fatalf("Len %d, want 1", z.Len())
	}
}

func TestConnZoneFullRefusesNewKeys(t *testing.T) {
	z := newConnZone("addr", 2*pageCost(connHdr+1), 1)
	c := z.Capacity(8)
	if c != 340 {
		t.Fatalf("capacity %d, want 340 (2 pages of 170 24-byte nodes)", c)
	}
	toks := make([]ConnToken, c)
	for i := range toks {
		ok, tok := z.Acquire([]byte(ipKey(i)), 1)
		if !ok {
			t.Fatalf("key %d refused before full", i)
		}
		toks[i] = tok
	}
	// No eviction in limit_conn: a new client is refused while all are busy.
	if ok, _ := z.Acquire([]byte("newcomer"), 10); ok {
		t.Fatal("full zone admitted a new key")
	}
	// Existing keys are still counted normally.
	if ok, _ := z.Acquire([]byte(ipKey(5)), 1); ok {
		t.Fatal("existing key over its limit admitted")
	}
	z.Release(toks[7])
	if ok, _ := z.Acquire([]byte("newcomer"), 10); !ok {
		t.Fatal("a freed node must make room")
	}
}

func TestConnCapacityPerMiB(t *testing.T) {
	z := NewConnZone("addr", mib)
	if z.Bytes() > mib {
		t.Fatalf("1 MiB zone reserves %d bytes", z.Bytes())
	}
	c4, c16 := z.Capacity(4), z.Capacity(16)
	t.Logf("1 MiB: %d IPv4 keys (%.1f B each), %d IPv6 keys (%.1f B each)",
		c4, float64(mib)/float64(c4), c16, float64(mib)/float64(c16))
	if c4 < 29_000 || c16 < 22_000 {
		t.Fatalf("keys per MiB: IPv4 %d, IPv6 %d", c4, c16)
	}
}

func TestConnHashCollisionsStayApart(t *testing.T) {
	z := newConnZone("addr", 2*pageCost(connHdr+1), 1)
	z.hash = func([]byte) uint64 { return 42 }
	var toks []ConnToken
	for i := 0; i < 100; i++ {
		ok, tok := z.Acquire([]byte(ipKey(i)), 1)
		if !ok {
			t.Fatalf("colliding key %d refused", i)
		}
		toks = append(toks, tok)
	}
	// Free every other key; the rest must still be found through the probe run.
	for i := 0; i < 100; i += 2 {
		z.Release(toks[i])
	}
	for i := 0; i < 100; i++ {
		ok, tok := z.Acquire([]byte(ipKey(i)), 1)
		if ok != (i%2 == 0) {
			t.Fatalf("key %d: admitted=%v", i, ok)
		}
		if ok {
			z.Release(tok)
		}
	}
	if z.Len() != 50 {
		t.Fatalf("Len %d, want 50", z.Len())
	}
}

func TestConnReleaseToWrongZonePanics(t *testing.T) {
	a, b := NewConnZone("a", mib), NewConnZone("b", mib)
	_, tok := a.Acquire([]byte("k"), 1)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	b.Release(tok)
}

func TestStatusStrings(t *testing.T) {
	for s, want := range map[ConnStatus]string{ConnStatusNone: "", ConnPassed: "PASSED", ConnRejected: "REJECTED", ConnRejectedDryRun: "REJECTED_DRY_RUN"} {
		if s.String() != want {
			t.Errorf("ConnStatus %d = %q, want %q", s, s.String(), want)
		}
	}
	if Busy.String() != "busy" || Result(99).String() != "invalid" || ReqStatus(99).String() != "" {
		t.Error("Result/ReqStatus strings")
	}
}

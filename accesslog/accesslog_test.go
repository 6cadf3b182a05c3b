package accesslog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Lines written concurrently by many goroutines all arrive, whole.
func TestConcurrentLinesNeverInterleave(t *testing.T) {
	dir := t.TempDir()
	r := NewRegistry(5 * time.Millisecond)
	f, err := r.Open(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < lines; i++ {
				f.Write([]byte(fmt.Sprintf("writer=%d line=%d %s\n", w, i, bytes.Repeat([]byte("x"), i%200))))
			}
		}(w)
	}
	wg.Wait()
	r.Close()
	b, err := os.ReadFile(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	got := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	seen := map[string]bool{}
	for _, l := range got {
		var w, i int
		var rest string
		if _, err := fmt.Sscanf(string(l), "writer=%d line=%d %s", &w, &i, &rest); err != nil && i%200 != 0 {
			t.Fatalf("mangled line %q", l)
		}
		if len(rest) != i%200 {
			t.Fatalf("line %q: padding %d, want %d", l, len(rest), i%200)
		}
		seen[fmt.Sprint(w, i)] = true
	}
	if len(seen) != writers*lines {
		t.Fatalf("%d distinct lines", len(seen))
	}
}

// Reopen (logrotate) moves new lines to a fresh file and keeps the old ones.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	r := NewRegistry(time.Hour)
	defer r.Close()
	f, err := r.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("before\n"))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reopen(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("after\n"))
	r.FlushAll()
	old, _ := os.ReadFile(p + ".1")
	cur, _ := os.ReadFile(p)
	if string(old) != "before\n" || string(cur) != "after\n" {
		t.Fatalf("rotated %q, current %q", old, cur)
	}
}

func TestWriteZeroAllocs(t *testing.T) {
	r := NewRegistry(time.Hour)
	defer r.Close()
	f, err := r.Open(filepath.Join(t.TempDir(), "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("127.0.0.1 - - [25/Nov/2026:17:00:00 +0000] \"GET / HTTP/1.1\" 200 2 \"-\" \"wrk\"\n")
	f.Write(line)
	f.Flush()
	if n := testing.AllocsPerRun(1000, func() { f.Write(line) }); n != 0 {
		t.Fatalf("%v allocations per line", n)
	}
}

package spool

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"testing"
)

func body(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

func writeAll(t *testing.T, s *Spool, b []byte, step int) {
	t.Helper()
	for len(b) > 0 {
		k := min(step, len(b))
		n, err := s.Write(b[:k])
		if err != nil || n != k {
			t.Fatalf("Write = %d, %v; want %d", n, err, k)
		}
		b = b[k:]
	}
}

func TestMemoryOnly(t *testing.T) {
	var s Spool
	s.Reset(100, t.TempDir(), -1)
	b := body(100)
	writeAll(t, &s, b, 7)
	s.CloseWrite(nil)
	if s.Spilled() || !bytes.Equal(s.Mem(), b) || s.Len() != 100 {
		t.Fatalf("spilled=%v len=%d", s.Spilled(), s.Len())
	}
	got, err := io.ReadAll(s.NewReader())
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

func TestSpillLeavesNoFileAndReadsBack(t *testing.T) {
	dir := t.TempDir()
	var s Spool
	s.Reset(1000, dir, -1)
	b := body(100_000)
	writeAll(t, &s, b, 4093)
	s.CloseWrite(nil)
	if !s.Spilled() || len(s.Mem()) != 1000 {
		t.Fatalf("spilled=%v mem=%d", s.Spilled(), len(s.Mem()))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("temp file left in %s: %v", dir, ents)
	}
	r := s.NewReader()
	for i := 0; i < 2; i++ { // a retried attempt rewinds
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("pass %d: read back %d bytes, %v", i, len(got), err)
		}
		r.Rewind()
	}
	f, n := s.File()
	if f == nil || n != 99_000 {
		t.Fatalf("File() = %v, %d", f, n)
	}
	s.Reset(10, dir, -1)
	if s.Spilled() || s.Len() != 0 {
		t.Fatal("Reset did not empty the spool")
	}
}

func TestFileMax(t *testing.T) {
	var s Spool
	s.Reset(10, t.TempDir(), 20)
	if n, err := s.Write(body(25)); n != 25 || err != nil {
		t.Fatalf("Write(25) = %d, %v", n, err)
	}
	if n, err := s.Write(body(6)); !errors.Is(err, ErrFull) || n != 0 {
		t.Fatalf("Write past max = %d, %v; want ErrFull", n, err)
	}
	s.Reset(10, "", 0) // no file at all
	if n, err := s.Write(body(12)); !errors.Is(err, ErrFull) || n != 10 {
		t.Fatalf("Write(12) with fileMax 0 = %d, %v; want 10, ErrFull", n, err)
	}
}

// A reader on another goroutine sees every byte in order while the writer
// still appends, and the writer's error at the end.
func TestConcurrentReader(t *testing.T) {
	var s Spool
	s.Reset(3000, t.TempDir(), -1)
	s.Share()
	b := body(200_000)
	type res struct {
		got []byte
		err error
	}
	ch := make(chan res)
	r := s.NewReader()
	go func() {
		got, err := io.ReadAll(r)
		ch <- res{got, err}
	}()
	writeAll(t, &s, b, 1500)
	boom := errors.New("client went away")
	s.CloseWrite(boom)
	out := <-ch
	if !bytes.Equal(out.got, b) || out.err != boom {
		t.Fatalf("reader got %d bytes, err %v", len(out.got), out.err)
	}
}

// Fill never loses a byte: at the file limit it stops with the rest
// still in the reader.
func TestFillStopsAtLimit(t *testing.T) {
	b := body(300_000)
	for _, tc := range []struct {
		mem     int
		fileMax int64
		hint    int64
		full    bool
	}{
		{1 << 20, -1, 300_000, false},
		{1 << 20, -1, -1, false},
		{1000, -1, -1, false},
		{1000, 100_000, -1, true},
		{1000, 0, 300_000, true},
		{4096, 0, 4096, true},
	} {
		var s Spool
		s.Reset(tc.mem, t.TempDir(), tc.fileMax)
		r := bytes.NewReader(b)
		n, err := s.Fill(r, tc.hint)
		if tc.full != (err == ErrFull) || (!tc.full && err != nil) {
			t.Fatalf("%+v: err = %v", tc, err)
		}
		if n != s.Len() {
			t.Fatalf("%+v: n=%d Len=%d", tc, n, s.Len())
		}
		rest, _ := io.ReadAll(r)
		got, _ := io.ReadAll(s.NewReader())
		if !bytes.Equal(append(got, rest...), b) {
			t.Fatalf("%+v: spool+rest differs from the body (%d+%d bytes)", tc, len(got), len(rest))
		}
		s.Close()
	}
}

func TestFillSteadyStateAllocs(t *testing.T) {
	b := body(10_000)
	var s Spool
	r := bytes.NewReader(b)
	allocs := testing.AllocsPerRun(100, func() {
		s.Reset(1<<20, "", -1)
		r.Reset(b)
		if _, err := s.Fill(r, int64(len(b))); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Fill allocates %.1f times per body in steady state", allocs)
	}
}

package tuning

import (
	"testing"

	"edgeproxy/engine"
	"edgeproxy/snapshot"
)

func cpus(t *testing.T, sets []engine.CPUSet) [][]int {
	t.Helper()
	var out [][]int
	for _, s := range sets {
		var l []int
		for i := 0; i < 1024; i++ {
			if s.IsSet(i) {
				l = append(l, i)
			}
		}
		out = append(out, l)
	}
	return out
}

func TestCPUSets(t *testing.T) {
	// Masks: one per loop, the last one for the loops past the list.
	got, err := CPUSets(&snapshot.CPUAffinity{Masks: [][]int{{0}, {1, 3}}}, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	if c := cpus(t, got); c[0][0] != 0 || len(c[1]) != 2 || c[1][1] != 3 || c[2][0] != 1 {
		t.Errorf("masks: %v", c)
	}
	// auto with a mask: the n-th CPU of the mask, cycling.
	got, _ = CPUSets(&snapshot.CPUAffinity{Auto: true, Masks: [][]int{{2, 5}}}, 3)
	if c := cpus(t, got); len(c) != 3 || c[0][0] != 2 || c[1][0] != 5 || c[2][0] != 2 {
		t.Errorf("auto mask: %v", c)
	}
	// auto alone: the CPUs this process may use.
	got, err = CPUSets(&snapshot.CPUAffinity{Auto: true}, 2)
	if err != nil || len(got) != 2 || got[0].Count() != 1 {
		t.Errorf("auto: %v %v", got, err)
	}
	if got, _ := CPUSets(nil, 4); got != nil {
		t.Errorf("unset: %v", got)
	}
	if _, err := CPUSets(&snapshot.CPUAffinity{Masks: [][]int{{}}}, 1); err == nil {
		t.Error("an empty mask was accepted")
	}
}

func TestNofileWanted(t *testing.T) {
	if n := NofileWanted(4096, 100000, 8); n != 4096 {
		t.Errorf("worker_rlimit_nofile not honoured: %d", n)
	}
	if n := NofileWanted(0, 1000, 2); n != 2*1000*2+1024 {
		t.Errorf("from worker_connections: %d", n)
	}
	got, want := RaiseNofile(NofileWanted(0, 16, 1))
	if got < 1 || want != 1056 {
		t.Errorf("RaiseNofile: %d %d", got, want)
	}
}

package tuning

import (
	"errors"

	"golang.org/x/sys/unix"

	"edgeproxy/engine"
	"edgeproxy/snapshot"
)

// CPUSets turns worker_cpu_affinity into one CPU set per event loop, as
// ngx_get_cpu_affinity does: with masks, loop n gets mask n (the last mask
// past the list); with "auto", loop n gets the n-th CPU of the mask (all
// CPUs the process may use by default), cycling. nil when not configured.
func CPUSets(a *snapshot.CPUAffinity, loops int) ([]engine.CPUSet, error) {
	if a == nil {
		return nil, nil
	}
	out := make([]engine.CPUSet, 0, loops)
	if a.Auto {
		var cpus []int
		if len(a.Masks) > 0 {
			cpus = a.Masks[0]
		} else {
			var cur unix.CPUSet
			if err := unix.SchedGetaffinity(0, &cur); err != nil {
				return nil, err
			}
			for i := 0; i < 1024; i++ {
				if cur.IsSet(i) {
					cpus = append(cpus, i)
				}
			}
		}
		if len(cpus) == 0 {
			return nil, errors.New("empty CPU mask")
		}
		for n := 0; n < loops; n++ {
			var s engine.CPUSet
			s.Set(cpus[n%len(cpus)])
			out = append(out, s)
		}
		return out, nil
	}
	for n := 0; n < loops; n++ {
		m := a.Masks[len(a.Masks)-1]
		if n < len(a.Masks) {
			m = a.Masks[n]
		}
		var s engine.CPUSet
		for _, c := range m {
			s.Set(c)
		}
		if s.Count() == 0 {
			return nil, errors.New("empty CPU mask")
		}
		out = append(out, s)
	}
	return out, nil
}

// NofileWanted is the RLIMIT_NOFILE to ask for at start: worker_rlimit_nofile
// when set; otherwise enough for worker_connections on every loop (nginx
// counts a proxied request as two connections), plus room for logs, cache
// files and listeners.
func NofileWanted(rlimitNofile, workerConnections, loops int) int {
	if rlimitNofile > 0 {
		return rlimitNofile
	}
	return 2*workerConnections*loops + 1024
}

// RaiseNofile raises the soft RLIMIT_NOFILE towards want, within the hard
// limit, and returns the soft limit now in force and want.
func RaiseNofile(want int) (int, int) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		return 0, want
	}
	if cur.Cur < uint64(want) && cur.Cur < cur.Max {
		n := cur
		n.Cur = uint64(want)
		if n.Cur > n.Max {
			n.Cur = n.Max
		}
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &n) == nil {
			cur = n
		}
	}
	return int(cur.Cur), want
}

// CPUCount is the number of CPUs this process may run on.
func CPUCount() int {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return 1
	}
	return s.Count()
}

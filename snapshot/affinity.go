package snapshot

import (
	"edgeproxy/config"
)

// CPUAffinity is a compiled worker_cpu_affinity: one CPU list per event
// loop (nginx gives the last mask to the workers past the list), or "auto"
// with an optional mask of the CPUs to use.
type CPUAffinity struct {
	Auto  bool
	Masks [][]int // CPU numbers of each mask; with Auto, at most one
}

// maxCPUs is nginx's limit on mask length (CPU_SETSIZE on Linux).
const maxCPUs = 1024

// cpuAffinity parses worker_cpu_affinity as ngx_set_cpu_affinity does:
// binary masks, the rightmost digit CPU 0, spaces skipped; "auto" uses the
// CPUs of its mask (all by default) one per loop, in order.
func cpuAffinity(d *config.Directive) (*CPUAffinity, error) {
	a := &CPUAffinity{}
	args := d.Args
	if args[0] == "auto" {
		a.Auto = true
		args = args[1:]
		if len(args) > 1 {
			return nil, errAt(d, "invalid number of arguments in \"worker_cpu_affinity\" directive")
		}
	}
	for _, m := range args {
		if len(m) > maxCPUs {
			return nil, errAt(d, "\"worker_cpu_affinity\" supports up to %d CPUs only", maxCPUs)
		}
		var cpus []int
		cpu := 0
		for i := len(m) - 1; i >= 0; i-- {
			switch m[i] {
			case ' ':
			case '0':
				cpu++
			case '1':
				cpus = append(cpus, cpu)
				cpu++
			default:
				return nil, errAt(d, "invalid character \"%c\" in \"worker_cpu_affinity\"", m[i])
			}
		}
		a.Masks = append(a.Masks, cpus)
	}
	return a, nil
}

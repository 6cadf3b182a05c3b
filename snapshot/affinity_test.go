package snapshot

import (
	"reflect"
	"strings"
	"testing"

	"edgeproxy/config"
)

func TestCPUAffinityParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want *CPUAffinity
		err  string
	}{
		{[]string{"0001", "0010", "0100", "1000"}, &CPUAffinity{Masks: [][]int{{0}, {1}, {2}, {3}}}, ""},
		{[]string{"0101", "1010"}, &CPUAffinity{Masks: [][]int{{0, 2}, {1, 3}}}, ""},
		{[]string{"auto"}, &CPUAffinity{Auto: true}, ""},
		{[]string{"auto", "01010101"}, &CPUAffinity{Auto: true, Masks: [][]int{{0, 2, 4, 6}}}, ""},
		{[]string{"0000 0001"}, &CPUAffinity{Masks: [][]int{{0}}}, ""}, // spaces skipped, as nginx
		{[]string{"0201"}, nil, `invalid character "2" in "worker_cpu_affinity"`},
		{[]string{"auto", "01", "10"}, nil, `invalid number of arguments in "worker_cpu_affinity" directive`},
		{[]string{strings.Repeat("1", 1025)}, nil, `"worker_cpu_affinity" supports up to 1024 CPUs only`},
	} {
		d := &config.Directive{Name: "worker_cpu_affinity", Args: tc.args, File: "nginx.conf", Line: 3}
		got, err := cpuAffinity(d)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "nginx.conf:3") {
				t.Errorf("%v: error %v, want %q in nginx.conf:3", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: %+v %v, want %+v", tc.args, got, err, tc.want)
		}
	}
}

func FuzzCPUAffinity(f *testing.F) {
	f.Add("0001 0010", "")
	f.Add("auto", "0101")
	f.Add("1 1", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		args := strings.Fields(a)
		if b != "" {
			args = append(args, b)
		}
		if len(args) == 0 {
			return
		}
		got, err := cpuAffinity(&config.Directive{Name: "worker_cpu_affinity", Args: args, File: "f", Line: 1})
		if err != nil {
			return
		}
		for _, m := range got.Masks {
			for _, c := range m {
				if c < 0 || c >= maxCPUs {
					t.Fatalf("cpu %d from %q", c, args)
				}
			}
		}
	})
}

package main

import (
	"fmt"
	"strconv"
	"strings"
)

// bigMachine is the CPU count from which the proxies, the apps and the
// load generators each get cores of their own and the multi-core
// configuration runs beside the one-core one.
const bigMachine = 12

// layout is one configuration of the data-path run: how many workers
// every proxy has, which CPUs the proxies, the apps and the load
// generators are pinned to, and how much load is offered.
type layout struct {
	Cores      int    // workers of every proxy: nginx processes, haproxy threads, GOMAXPROCS
	ProxyCPU   string // taskset lists; empty: not pinned
	AppCPU     string
	LoadCPU    string
	AppWorkers int // origin nginx's workers, the gRPC app's GOMAXPROCS
	Threads    int // wrk -t
	Conns      int // wrk -c
	GRPCConc   int // concurrent gRPC calls, or streams
	GRPCConns  int // connections they are spread over
	LoadProcs  int // the gRPC load generator's GOMAXPROCS
	// Crowded: the machine has too few CPUs for the layout (its proxies'
	// workers share one), so its figures test the rig, not the proxies.
	Crowded bool
}

// name is the layout's title in the report; a crowded one says so
// wherever its figures appear, the targets included.
func (l layout) name() string {
	n := "1 core"
	if l.Cores > 1 {
		n = fmt.Sprintf("%d cores", l.Cores)
	}
	if l.Crowded {
		n += " (crowded)"
	}
	return n
}

// overrides are the flags that replace a layout's automatic choices;
// "auto" (CPU lists) and 0 (counts) keep them.
type overrides struct {
	proxyCPU, appCPU, loadCPU string
	conns, grpcConc           int
}

// layouts picks the configurations to run on a machine with ncpu CPUs:
// cores lists the proxies' worker counts (nil: 1, and 4 as well on a
// machine of at least bigMachine CPUs).
func layouts(ncpu int, cores []int, o overrides) ([]layout, error) {
	if len(cores) == 0 {
		cores = []int{1}
		if ncpu >= bigMachine {
			cores = append(cores, 4)
		}
	}
	var out []layout
	for _, c := range cores {
		l, err := pick(ncpu, c)
		if err != nil {
			return nil, err
		}
		for _, f := range []struct {
			flag string
			dst  *string
		}{{o.proxyCPU, &l.ProxyCPU}, {o.appCPU, &l.AppCPU}, {o.loadCPU, &l.LoadCPU}} {
			if f.flag != "auto" {
				*f.dst = f.flag
			}
		}
		if o.conns > 0 {
			l.Conns = o.conns
		}
		if o.grpcConc > 0 {
			l.GRPCConc = o.grpcConc
			l.GRPCConns = min(l.GRPCConns, l.GRPCConc)
		}
		out = append(out, l)
	}
	return out, nil
}

// pick is the automatic layout for c workers per proxy. A big machine
// keeps CPU 0 for the rest of the system: proxies on 1..c, the apps on
// the next four, the load generators on up to four after them (the same
// app and load CPUs at 1 and at 4 cores). A small one runs as `make
// bench` always has: the proxies on CPU 1, apps and load on CPU 0.
func pick(ncpu, c int) (layout, error) {
	if c < 1 {
		return layout{}, fmt.Errorf("-cores %d: want at least 1", c)
	}
	l := layout{Cores: c, GRPCConns: c, GRPCConc: 32 * c}
	if ncpu >= bigMachine {
		app := 1 + max(c, 4)
		load := app + 4
		if load >= ncpu {
			return layout{}, fmt.Errorf("-cores %d: %d CPUs are too few for the proxies, four app CPUs and a load CPU", c, ncpu)
		}
		last := min(load+3, ncpu-1)
		l.ProxyCPU, l.AppCPU, l.LoadCPU = cpuRange(1, c), cpuRange(app, 4), cpuRange(load, last-load+1)
		l.AppWorkers, l.Threads, l.LoadProcs = 4, 4, last-load+1
		l.Conns = 64 * c
		return l, nil
	}
	l.AppWorkers, l.LoadProcs = 1, 1
	if ncpu >= 2 {
		l.ProxyCPU, l.AppCPU, l.LoadCPU = "1", "0", "0"
	}
	l.Threads, l.Conns = 1, 32
	if c > 1 {
		l.Threads, l.Conns = 4, 64*c
	}
	// Every proxy keeps to CPU 1 here, so more workers only crowd it.
	l.Crowded = c > 1
	return l, nil
}

func cpuRange(first, n int) string {
	if n == 1 {
		return strconv.Itoa(first)
	}
	return fmt.Sprintf("%d-%d", first, first+n-1)
}

// parseCores reads -cores: "1", "4", "1,4"; empty is automatic.
func parseCores(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("-cores %q: want a comma-separated list of worker counts from 1 to 64", s)
		}
		for _, seen := range out {
			if seen == n {
				return nil, fmt.Errorf("-cores %q: %d twice", s, n)
			}
		}
		out = append(out, n)
	}
	return out, nil
}

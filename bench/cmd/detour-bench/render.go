package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/detourmesh/detour/bench/internal/report"
)

// notesFile is the hand-written analysis the report ends with, so a
// regenerated report keeps it.
const notesFile = "bench/NOTES.md"

type reportData struct {
	cfg     config
	started time.Time
	wall    time.Duration
	data    []*dataPath // one per configuration, 1 core first
	jobs    []*goJob
}

func (r *reportData) write(path string) error {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	form := "full"
	if r.cfg.quick {
		form = "QUICK (CI smoke run: one short run per row, 1 s, gRPC 0.5 s; not figures to quote)"
	}
	w("Written by `make bench` (`bench/cmd/detour-bench`, %s form) on %s; the run took %s. ",
		form, r.started.Format("2006-01-02 15:04 MST"), r.wall.Round(time.Second))
	w("Regenerate it rather than editing it: the analysis lives in [bench/NOTES.md](../bench/NOTES.md) and is included at the end.\n\n")
	if len(r.data) > 0 {
		w("## Targets\n\n%s\n", r.targets())
	}
	w("## Machine and versions\n\n%s%s\n", machine(), sidecarLine(r.cfg.sidecar, r.cfg.sidecarLabel))
	if len(r.data) > 0 {
		w("## Data path\n\n%s\n", r.setup())
	}
	for _, d := range r.data {
		w("## Data path, %s\n\n%s\n", d.lay.name(), d.layoutText())
		w("### L4 (TCP), %s\n\n%s\n", d.lay.name(), d.l4Table())
		w("### HTTP/1.1, %s\n\n%s\n", d.lay.name(), d.httpTable())
		w("### gRPC (HTTP/2), %s\n\n%s\n", d.lay.name(), d.grpcTable())
		w("### Memory and CPU of each proxy, %s\n\n%s\n", d.lay.name(), d.resourceTable())
	}
	if len(r.jobs) > 0 {
		w("## Control plane\n\n")
		for _, j := range r.jobs {
			w("### %s\n\n%s\n\n```\n%s\n```\n\n%s\n", j.Title, j.Explain,
				strings.Join(j.Args, " "), goBenchTable(j.Results))
		}
	}
	if notes, err := os.ReadFile(notesFile); err == nil {
		w("%s", notes)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// setup is what every configuration shares.
func (r *reportData) setup() string {
	c := r.cfg
	var names []string
	for _, d := range r.data {
		names = append(names, d.lay.name())
	}
	return fmt.Sprintf(`Every row runs on the same machine in the same run, against the same apps, each app in a process of its own: an nginx `+"`return 200 \"hello world\\n\"`"+` for HTTP and L4, `+"`iperf3 -s`"+` for bulk transfer, the greeter gRPC service (Go). Configurations: %[1]s (`+"`-cores`"+`; by default 1, and 4 as well on a machine of %[2]d or more CPUs). In each, every proxy under test gets the same number of workers and is pinned to the same CPUs: nginx `+"`worker_processes`"+`, haproxy `+"`nbthread`"+`, each detour sidecar's GOMAXPROCS (the two-hop rows have **two** sidecars sharing those CPUs). Upstream connections are kept alive (nginx `+"`keepalive 64`"+`, haproxy `+"`http-reuse always`"+`, the sidecar's own pool). The gRPC peers: nginx `+"`grpc_pass grpc://`"+` behind an `+"`http2`"+` listener, haproxy `+"`mode http`"+` with `+"`proto h2`"+` on the bind and the server line. Proxy configurations: [bench/internal/rig/conf.go](../bench/internal/rig/conf.go).

- Paths: **direct** = the load generator to the app; **single hop** = to host B's sidecar ingress, which forwards to the app; **two-hop** = the mesh path, host A's sidecar egress → host B's sidecar ingress → app. Hosts A and B are loopback addresses of the run's own (.2 and .3 of a free 127.A.B.0/24; `+"`DETOUR_TEST_NET`"+` pins it) with their own naming agents; the registry is B's embedded etcd.
- HTTP/1.1 and L4 rows: wrk (`+"`wrk -tT -cC -d%[3]s --latency URL`"+`); the L4 rows drive HTTP/1.1 through the TCP proxy so they have latencies too. Bulk: `+"`iperf3 -c HOST -p PORT -t %[4]s -J`"+` (one stream). gRPC: `+"`detour-bench grpc-load --conc N --conns K --duration %[5]s`"+`: N concurrent unary calls spread over K connections, or N bidi streams each with one message in flight.
- %[6]d repetition(s) per row; the rows take turns within a repetition; each cell is the median of the repetitions, the range column shows the spread of the rate. A run with any socket error, non-2xx answer or failed call fails the whole benchmark.
- **Per proxy CPU-second**: requests (calls, messages) served divided by the user+system CPU time of the proxy's processes during the run (nginx master + workers, haproxy, the sidecars; two-hop counts both sidecars). It is what one core of the proxy would serve if the proxy alone were the limit: when the load generator or the app saturates first, req/s is capped by them and this column is the fairer comparison of the proxies.
- Memory: RSS of the proxy's processes at rest after start-up, and the peak sampled every 100 ms under load.

`, strings.Join(names, " and "), bigMachine, c.duration, c.bulkDuration, c.grpcDuration, c.reps)
}

// layoutText says where one configuration ran and what load it offered.
func (d *dataPath) layoutText() string {
	l := d.lay
	where := func(cpu string) string {
		if cpu == "" {
			return "not pinned"
		}
		return "CPU " + cpu
	}
	s := fmt.Sprintf("Proxies: %d worker(s) each, %s. Apps: %s (origin nginx `worker_processes %d`, gRPC app GOMAXPROCS=%d). "+
		"Load: %s; `wrk -t%d -c%d`; gRPC %d concurrent calls or streams on %d connection(s), grpc-load GOMAXPROCS=%d.\n",
		l.Cores, where(l.ProxyCPU), where(l.AppCPU), l.AppWorkers, l.AppWorkers, where(l.LoadCPU), l.Threads, l.Conns,
		l.GRPCConc, l.GRPCConns, l.LoadProcs)
	if l.Crowded {
		s += "\n**Crowded:** this machine has fewer CPUs than the configuration's workers and load; it was run to test the rig (`-cores`), its figures say nothing about the proxies.\n"
	}
	return s
}

// sidecarLine names the sidecar binary measured when it is not this
// checkout's: its label, the commit Go stamped into it (builds with
// -buildvcs=false have none) and its hash.
func sidecarLine(bin, label string) string {
	if bin == "" {
		return "- detour sidecar: built from this checkout\n"
	}
	var what []string
	if label != "" {
		what = append(what, "**"+label+"**")
	}
	if out, err := exec.Command("go", "version", "-m", bin).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "build" && (strings.HasPrefix(f[1], "vcs.revision=") || f[1] == "vcs.modified=true") {
				what = append(what, f[1])
			}
		}
	}
	if b, err := os.ReadFile(bin); err == nil {
		what = append(what, fmt.Sprintf("sha256 %x", sha256.Sum256(b))[:19])
	}
	return fmt.Sprintf("- detour sidecar: `%s` (%s; `-sidecar` / `DETOUR_BENCH_SIDECAR`); the naming agents are this checkout's\n", bin, strings.Join(what, ", "))
}

// find is the path of that name, or an empty one (every figure zero, so
// its ratios show "–").
func (d *dataPath) find(name string) *pathResult {
	for _, p := range d.paths {
		if p.Path.Name == name {
			return p
		}
	}
	return &pathResult{}
}

// median of f over runs; spread is "min–max" of the rate.
func median(runs []run, f func(run) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func rate(r run) float64 { return r.Rate }
func p50(r run) float64  { return float64(r.P50) }
func p99(r run) float64  { return float64(r.P99) }

func spread(runs []run, format func(float64) string) string {
	if len(runs) == 0 {
		return "–"
	}
	lo, hi := runs[0].Rate, runs[0].Rate
	for _, r := range runs {
		lo, hi = min(lo, r.Rate), max(hi, r.Rate)
	}
	return format(lo) + " – " + format(hi)
}

func dur(v float64) string { return report.Ms(time.Duration(v)) }

func gbit(v float64) string { return fmt.Sprintf("%.1f", v/1e9) }

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// cpuPer1k is the proxy's CPU seconds per 1,000 requests (median run).
func cpuPer1k(runs []run) float64 {
	return median(runs, func(r run) float64 {
		if r.Requests == 0 {
			return 0
		}
		return r.CPU.Seconds() / float64(r.Requests) * 1000
	})
}

// perCPUSecond is requests per second of the proxy's CPU time.
func perCPUSecond(runs []run) float64 {
	if c := cpuPer1k(runs); c > 0 {
		return 1000 / c
	}
	return 0
}

// goBenchTable shows every metric the benchmarks reported, except one
// that is zero on every line (the latency benchmarks zero ns/op on
// purpose: its mean hides the tail, the percentiles say it).
func goBenchTable(bs []report.Bench) string {
	var units []string
	for _, b := range bs {
		for _, m := range b.Metrics {
			if m.Value != 0 && !slices.Contains(units, m.Unit) {
				units = append(units, m.Unit)
			}
		}
	}
	// Benchmarks of the same name in several packages (one per registry
	// adapter) are told apart by their package.
	pkgs := map[string]bool{}
	for _, b := range bs {
		pkgs[b.Pkg] = true
	}
	t := report.Table{Head: append([]string{"benchmark", "iterations"}, units...)}
	for _, b := range bs {
		name := b.Name
		if len(pkgs) > 1 {
			name = path.Base(b.Pkg) + ": " + name
		}
		row := []string{name, fmt.Sprint(b.N)}
		for _, u := range units {
			if v, ok := b.Get(u); ok {
				row = append(row, num(v))
			} else {
				row = append(row, "")
			}
		}
		t.Add(row...)
	}
	return t.String()
}

// num formats a benchmark value: four significant digits, but never in
// exponent form.
func num(v float64) string {
	if v >= 1e4 || v <= -1e4 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.4g", v)
}

func machine() string {
	line := func(name string, argv ...string) string {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("- %s: not found\n", name)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return fmt.Sprintf("- %s: %s\n", name, first)
	}
	var b strings.Builder
	b.WriteString(fmt.Sprintf("- CPU: %s, %d cores visible\n", cpuModel(), runtime.NumCPU()))
	b.WriteString(line("memory", "sh", "-c", "free -m | awk '/^Mem:/ {print $2 \" MiB\"}'"))
	b.WriteString(line("kernel", "uname", "-sr"))
	b.WriteString(fmt.Sprintf("- Go: %s\n", runtime.Version()))
	b.WriteString(line("nginx", "sh", "-c", "nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1"))
	b.WriteString(line("haproxy", "sh", "-c", "haproxy -v 2>&1 || /usr/sbin/haproxy -v 2>&1"))
	b.WriteString(line("wrk", "sh", "-c", "wrk -v 2>&1 | head -n1"))
	b.WriteString(line("iperf3", "iperf3", "--version"))
	b.WriteString(line("detour", "git", "describe", "--always", "--dirty"))
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

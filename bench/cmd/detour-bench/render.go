package main

import (
	"bytes"
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
	data    *dataPath
	jobs    []*goJob
}

func (r *reportData) write(path string) error {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	form := "full"
	if r.cfg.quick {
		form = "QUICK (CI smoke run: one 1 s run per row; not figures to quote)"
	}
	w("Written by `make bench` (`bench/cmd/detour-bench`, %s form) on %s; the run took %s. ",
		form, r.started.Format("2006-01-02 15:04 MST"), r.wall.Round(time.Second))
	w("Regenerate it rather than editing it: the analysis lives in [bench/NOTES.md](../bench/NOTES.md) and is included at the end.\n\n")
	if r.data != nil {
		w("## Targets\n\n%s\n", r.targets())
	}
	w("## Machine and versions\n\n%s\n", machine())
	if r.data != nil {
		w("## Data path\n\n%s\n", r.setup())
		w("### L4 (TCP)\n\n%s\n", r.l4Table())
		w("### HTTP/1.1\n\n%s\n", r.httpTable())
		w("### gRPC (HTTP/2)\n\n%s\n", r.grpcTable())
		w("### Memory and CPU of each proxy\n\n%s\n", r.resourceTable())
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

func (r *reportData) setup() string {
	c := r.cfg
	return fmt.Sprintf(`Every row runs on the same machine in the same run, against the same apps, each app in a process of its own: an nginx `+"`return 200 \"hello world\\n\"`"+` (one worker) for HTTP and L4, `+"`iperf3 -s`"+` for bulk transfer, the greeter gRPC service (Go, GOMAXPROCS=1). Every proxy under test is limited to one worker and pinned to CPU %[1]s: nginx `+"`worker_processes 1`"+`, haproxy `+"`nbthread 1`"+`, each detour sidecar GOMAXPROCS=1 (the two-hop rows have **two** sidecars sharing that CPU). The apps and the load generators are pinned to CPU %[2]s. Upstream connections are kept alive (nginx `+"`keepalive 64`"+`, haproxy `+"`http-reuse always`"+`, the sidecar's own pool). Configurations: [bench/internal/rig/conf.go](../bench/internal/rig/conf.go).

- Paths: **direct** = the load generator to the app; **single hop** = to host B's sidecar ingress, which forwards to the app; **two-hop** = the mesh path, host A's sidecar egress → host B's sidecar ingress → app. Hosts A and B are loopback addresses of the run's own (.2 and .3 of a free 127.A.B.0/24; `+"`DETOUR_TEST_NET`"+` pins it) with their own naming agents; the registry is B's embedded etcd.
- HTTP/1.1 and L4 rows: `+"`taskset -c %[2]s wrk -t1 -c%[3]d -d%[4]s --latency URL`"+`; the L4 rows drive HTTP/1.1 through the TCP proxy so they have latencies too. Bulk: `+"`taskset -c %[2]s iperf3 -c HOST -p PORT -t %[5]s -J`"+`. gRPC: `+"`GOMAXPROCS=1 taskset -c %[2]s detour-bench grpc-load --conc %[3]d`"+` (%[3]d concurrent unary calls on one connection, or %[3]d bidi streams each with one message in flight).
- %[6]d repetition(s) per row; the rows take turns within a repetition; each cell is the median of the repetitions, the range column shows the spread of the rate. A run with any socket error, non-2xx answer or failed call fails the whole benchmark.
- Memory: RSS of the proxy's processes (nginx master + worker) at rest after start-up, and the peak sampled every 100 ms under load. CPU: user+system time of the proxy's processes during the run, divided by the requests served.

`, c.proxyCPU, c.loadCPU, c.conns, c.duration, c.bulkDuration, c.reps)
}

func (r *reportData) find(name string) *pathResult {
	for _, p := range r.data.paths {
		if p.Path.Name == name {
			return p
		}
	}
	return nil
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
	lo, hi := runs[0].Rate, runs[0].Rate
	for _, r := range runs {
		lo, hi = min(lo, r.Rate), max(hi, r.Rate)
	}
	return format(lo) + " – " + format(hi)
}

func dur(v float64) string { return report.Ms(time.Duration(v)) }

func gbit(v float64) string { return fmt.Sprintf("%.1f", v/1e9) }

func (r *reportData) l4Table() string {
	t := report.Table{Head: []string{"path", "req/s (HTTP over TCP)", "p50 ms", "p99 ms", "vs direct", "vs nginx stream", "bulk Gbit/s", "bulk vs direct", "bulk vs nginx", "req/s range"}}
	direct, ngx := r.find("direct"), r.find("nginx")
	for _, p := range r.data.paths {
		name := p.Path.Name
		switch name {
		case "nginx":
			name = "nginx stream"
		case "haproxy":
			name = "haproxy mode tcp"
		}
		t.Add(name, report.Rate(median(p.L4, rate)), dur(median(p.L4, p50)), dur(median(p.L4, p99)),
			report.Ratio(median(p.L4, rate), median(direct.L4, rate)), report.Ratio(median(p.L4, rate), median(ngx.L4, rate)),
			gbit(median(p.Bulk, rate)), report.Ratio(median(p.Bulk, rate), median(direct.Bulk, rate)),
			report.Ratio(median(p.Bulk, rate), median(ngx.Bulk, rate)), spread(p.L4, report.Rate))
	}
	return t.String()
}

func (r *reportData) httpTable() string {
	t := report.Table{Head: []string{"path", "req/s", "p50 ms", "p99 ms", "vs direct", "vs nginx", "p99 vs nginx", "req/s range"}}
	direct, ngx := r.find("direct"), r.find("nginx")
	for _, p := range r.data.paths {
		name := p.Path.Name
		if name == "haproxy" {
			name = "haproxy mode http"
		}
		t.Add(name, report.Rate(median(p.HTTP, rate)), dur(median(p.HTTP, p50)), dur(median(p.HTTP, p99)),
			report.Ratio(median(p.HTTP, rate), median(direct.HTTP, rate)), report.Ratio(median(p.HTTP, rate), median(ngx.HTTP, rate)),
			report.Ratio(median(p.HTTP, p99), median(ngx.HTTP, p99)), spread(p.HTTP, report.Rate))
	}
	return t.String()
}

func (r *reportData) grpcTable() string {
	t := report.Table{Head: []string{"path", "calls", "per second", "p50 ms", "p99 ms", "vs direct", "range"}}
	direct := r.find("direct")
	for _, mode := range []string{"unary", "stream messages"} {
		for _, p := range r.data.paths {
			runs, base := p.Unary, direct.Unary
			if mode != "unary" {
				runs, base = p.Stream, direct.Stream
			}
			if len(runs) == 0 {
				continue
			}
			t.Add(p.Path.Name, mode, report.Rate(median(runs, rate)), dur(median(runs, p50)), dur(median(runs, p99)),
				report.Ratio(median(runs, rate), median(base, rate)), spread(runs, report.Rate))
		}
	}
	return t.String()
}

func (r *reportData) resourceTable() string {
	t := report.Table{Head: []string{"proxy", "RSS at rest MiB", "RSS peak under load MiB",
		"CPU s per 1,000 HTTP/1.1 req", "HTTP/1.1 req per CPU-second", "vs nginx",
		"CPU s per 1,000 L4 req", "L4 req per CPU-second", "vs nginx stream"}}
	ngx := r.find("nginx")
	for _, p := range r.data.paths {
		if !p.Path.Proxy() {
			continue
		}
		t.Add(p.Path.Name, mib(p.RSSRest), mib(p.RSSPeak),
			fmt.Sprintf("%.4f", cpuPer1k(p.HTTP)), report.Rate(perCPUSecond(p.HTTP)), report.Ratio(perCPUSecond(p.HTTP), perCPUSecond(ngx.HTTP)),
			fmt.Sprintf("%.4f", cpuPer1k(p.L4)), report.Rate(perCPUSecond(p.L4)), report.Ratio(perCPUSecond(p.L4), perCPUSecond(ngx.L4)))
	}
	return t.String() + `
The detour rows' processes are the sidecars only (the naming agents are not on the data path); two-hop counts both sidecars. Requests per CPU-second is what one core of the proxy would serve if the proxy alone were the limit; on two cores the load generator and the app share the other core and may saturate first (then a proxy's req/s in the tables above is capped by them, not by the proxy), so this column is the fairer comparison of proxy efficiency.
`
}

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

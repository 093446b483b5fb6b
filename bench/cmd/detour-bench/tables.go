package main

import (
	"fmt"

	"github.com/detourmesh/detour/bench/internal/report"
)

// The peers every detour row is held against.
const (
	nginxRow   = "nginx"
	haproxyRow = "haproxy"
	oneHopRow  = "detour single hop"
)

// scenario picks one kind of run out of a path's results.
type scenario func(*pathResult) []run

func l4Runs(p *pathResult) []run     { return p.L4 }
func httpRuns(p *pathResult) []run   { return p.HTTP }
func unaryRuns(p *pathResult) []run  { return p.Unary }
func streamRuns(p *pathResult) []run { return p.Stream }

// betterPeerP99 is the lower of nginx's and haproxy's median p99 in s
// (0 when neither ran it).
func (d *dataPath) betterPeerP99(s scenario) float64 {
	best := 0.0
	for _, n := range []string{nginxRow, haproxyRow} {
		if v := median(s(d.find(n)), p99); v > 0 && (best == 0 || v < best) {
			best = v
		}
	}
	return best
}

// perCPU is the per-CPU-second cell: "–" for a path with no proxy.
func perCPU(runs []run) string {
	if v := perCPUSecond(runs); v > 0 {
		return report.Rate(v)
	}
	return "–"
}

func (d *dataPath) l4Table() string {
	t := report.Table{Head: []string{"path", "req/s (HTTP over TCP)", "p50 ms", "p99 ms", "vs direct", "vs nginx stream",
		"p99 vs better peer", "req per proxy CPU-s", "per CPU-s vs nginx stream",
		"bulk Gbit/s", "bulk vs direct", "bulk vs nginx", "req/s range"}}
	direct, ngx := d.find("direct"), d.find(nginxRow)
	peerP99 := d.betterPeerP99(l4Runs)
	for _, p := range d.paths {
		name := p.Path.Name
		switch name {
		case nginxRow:
			name = "nginx stream"
		case haproxyRow:
			name = "haproxy mode tcp"
		}
		t.Add(name, report.Rate(median(p.L4, rate)), dur(median(p.L4, p50)), dur(median(p.L4, p99)),
			report.Ratio(median(p.L4, rate), median(direct.L4, rate)), report.Ratio(median(p.L4, rate), median(ngx.L4, rate)),
			report.Ratio(median(p.L4, p99), peerP99), perCPU(p.L4), cpuRatio(p.L4, ngx.L4),
			gbit(median(p.Bulk, rate)), report.Ratio(median(p.Bulk, rate), median(direct.Bulk, rate)),
			report.Ratio(median(p.Bulk, rate), median(ngx.Bulk, rate)), spread(p.L4, report.Rate))
	}
	return t.String()
}

func (d *dataPath) httpTable() string {
	t := report.Table{Head: []string{"path", "req/s", "p50 ms", "p99 ms", "vs direct", "vs nginx", "p99 vs better peer",
		"req per proxy CPU-s", "per CPU-s vs nginx", "req/s range"}}
	direct, ngx := d.find("direct"), d.find(nginxRow)
	peerP99 := d.betterPeerP99(httpRuns)
	for _, p := range d.paths {
		name := p.Path.Name
		if name == haproxyRow {
			name = "haproxy mode http"
		}
		t.Add(name, report.Rate(median(p.HTTP, rate)), dur(median(p.HTTP, p50)), dur(median(p.HTTP, p99)),
			report.Ratio(median(p.HTTP, rate), median(direct.HTTP, rate)), report.Ratio(median(p.HTTP, rate), median(ngx.HTTP, rate)),
			report.Ratio(median(p.HTTP, p99), peerP99), perCPU(p.HTTP), cpuRatio(p.HTTP, ngx.HTTP), spread(p.HTTP, report.Rate))
	}
	return t.String()
}

func (d *dataPath) grpcTable() string {
	t := report.Table{Head: []string{"path", "calls", "per second", "p50 ms", "p99 ms", "vs direct", "vs haproxy h2",
		"p99 vs better peer", "per proxy CPU-s", "per CPU-s vs haproxy h2", "range"}}
	direct, hap := d.find("direct"), d.find(haproxyRow)
	for _, mode := range []struct {
		name string
		runs scenario
	}{{"unary", unaryRuns}, {"stream messages", streamRuns}} {
		peerP99 := d.betterPeerP99(mode.runs)
		for _, p := range d.paths {
			runs := mode.runs(p)
			if len(runs) == 0 {
				continue
			}
			name := p.Path.Name
			switch name {
			case nginxRow:
				name = "nginx grpc_pass"
			case haproxyRow:
				name = "haproxy h2"
			}
			t.Add(name, mode.name, report.Rate(median(runs, rate)), dur(median(runs, p50)), dur(median(runs, p99)),
				report.Ratio(median(runs, rate), median(mode.runs(direct), rate)),
				report.Ratio(median(runs, rate), median(mode.runs(hap), rate)),
				report.Ratio(median(runs, p99), peerP99), perCPU(runs), cpuRatio(runs, mode.runs(hap)), spread(runs, report.Rate))
		}
	}
	return t.String()
}

// cpuRatio is runs' requests per proxy CPU-second over base's; "–" when
// either has no proxy.
func cpuRatio(runs, base []run) string {
	a, b := perCPUSecond(runs), perCPUSecond(base)
	if a == 0 {
		return "–"
	}
	return report.Ratio(a, b)
}

func (d *dataPath) resourceTable() string {
	t := report.Table{Head: []string{"proxy", "RSS at rest MiB", "RSS peak under load MiB",
		"CPU µs per HTTP/1.1 req", "per L4 req", "per gRPC unary call", "per gRPC stream message"}}
	us := func(runs []run) string {
		if c := cpuPer1k(runs); c > 0 {
			return fmt.Sprintf("%.1f", c*1000)
		}
		return "–"
	}
	for _, p := range d.paths {
		if !p.Path.Proxy() {
			continue
		}
		t.Add(p.Path.Name, mib(p.RSSRest), mib(p.RSSPeak), us(p.HTTP), us(p.L4), us(p.Unary), us(p.Stream))
	}
	return t.String() + `
The detour rows' processes are the sidecars only (the naming agents are not on the data path); two-hop counts both sidecars. The tables above turn the same CPU figures into requests per proxy CPU-second.
`
}

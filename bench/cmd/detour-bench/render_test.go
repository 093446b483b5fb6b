package main

import (
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/bench/internal/report"
)

func TestMedian(t *testing.T) {
	runs := []run{{Rate: 3}, {Rate: 1}, {Rate: 2}}
	if m := median(runs, rate); m != 2 {
		t.Fatalf("median of 3,1,2 = %v", m)
	}
	if m := median(runs[:2], rate); m != 2 {
		t.Fatalf("median of 3,1 = %v, want 2", m)
	}
	if m := median(nil, rate); m != 0 {
		t.Fatalf("median of nothing = %v", m)
	}
}

func TestGoBenchTableDropsZeroUnits(t *testing.T) {
	bs, err := report.ParseGoBench("BenchmarkFallback-2 200 0 ns/op 5.8 p50-ms 12.5 p99-ms\nBenchmarkPick-2 10 50 ns/op 0 p50-ms\n")
	if err != nil {
		t.Fatal(err)
	}
	got := goBenchTable(bs)
	if !strings.Contains(got, "| benchmark | iterations | p50-ms | p99-ms | ns/op |") {
		t.Fatalf("ns/op (non-zero on one line) or a percentile missing:\n%s", got)
	}
	bs, _ = report.ParseGoBench("BenchmarkFallback-2 200 0 ns/op 5.8 p50-ms\n")
	if strings.Contains(goBenchTable(bs), "ns/op") {
		t.Fatalf("all-zero ns/op shown:\n%s", goBenchTable(bs))
	}
}

func TestTargets(t *testing.T) {
	mk := func(httpRate float64, p99 time.Duration) *pathResult {
		r := []run{{Rate: httpRate, P99: p99}}
		return &pathResult{HTTP: r, L4: r, Bulk: r}
	}
	d := &dataPath{}
	for _, p := range []struct {
		name string
		rate float64
		p99  time.Duration
	}{{"direct", 100, time.Millisecond}, {"nginx", 50, 2 * time.Millisecond}, {"detour single hop", 45, 2 * time.Millisecond}} {
		pr := mk(p.rate, p.p99)
		pr.Path.Name = p.name
		pr.RSSRest = 20 << 20
		d.paths = append(d.paths, pr)
	}
	rep := &reportData{data: d}
	got := rep.targets()
	for _, want := range []string{
		"| single-hop HTTP/1.1 ≥ 0.8× nginx http | 0.90× | yes |",
		"| single-hop L4 ≥ nginx stream | 0.90× req/s (HTTP over TCP), 0.90× bulk throughput | **no** |",
		"| single-hop HTTP/1.1 p99 ≤ 1.5× nginx's | 1.00× (2.00 ms vs 2.00 ms) | yes |",
		"| sidecar memory at rest < 30 MB | 20.0 MiB",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Chdir("../../..") // validate wants the repository root
	good := config{reps: 3, conns: 32, duration: 6 * time.Second, bulkDuration: 4 * time.Second}
	if err := good.validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, bad := range map[string]func(*config){
		"no reps":        func(c *config) { c.reps = 0 },
		"no conns":       func(c *config) { c.conns = 0 },
		"half a second":  func(c *config) { c.duration = 1500 * time.Millisecond },
		"zero bulk time": func(c *config) { c.bulkDuration = 0 },
	} {
		c := good
		bad(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGoBenchTableNamesPackages(t *testing.T) {
	bs, err := report.ParseGoBench("pkg: x/registry-adapters/etcd\nBenchmarkPropagation-2 200 0.5 p50-ms\npkg: x/registry-adapters/zookeeper\nBenchmarkPropagation-2 200 0.9 p50-ms\n")
	if err != nil {
		t.Fatal(err)
	}
	got := goBenchTable(bs)
	for _, want := range []string{"| etcd: Propagation | 200 | 0.5 |", "| zookeeper: Propagation | 200 | 0.9 |"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{90590: "90590", 1e4: "10000", 12.345: "12.35", 0.04504: "0.04504", 31143032: "31143032"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

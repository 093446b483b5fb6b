package main

import (
	"os"
	"path/filepath"
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

// fixture is a run's rows: rate and p99 per path, the same in every
// scenario, over one second, the proxy busy cpuEff CPU-seconds of it.
func fixture(lay layout, rows ...fixtureRow) *dataPath {
	d := &dataPath{lay: lay}
	for _, f := range rows {
		r := run{Rate: f.rate, P99: f.p99, P50: f.p99 / 2, Requests: int64(f.rate)}
		if f.proxy {
			r.CPU = time.Duration(float64(time.Second) * f.cpuEff)
		}
		runs := []run{r}
		pr := &pathResult{HTTP: runs, L4: runs, Bulk: runs, Unary: runs, Stream: runs, RSSRest: 20 << 20}
		pr.Path.Name = f.name
		if f.proxy {
			pr.Path.ProxyPIDs = func() []int { return nil }
		}
		d.paths = append(d.paths, pr)
	}
	return d
}

type fixtureRow struct {
	name   string
	rate   float64
	p99    time.Duration
	proxy  bool
	cpuEff float64 // CPU-seconds of the proxy per second of the run
}

var fixtureRows = []fixtureRow{
	{"direct", 100, time.Millisecond, false, 0},
	{"nginx", 50, 2 * time.Millisecond, true, 1},
	{"haproxy", 40, 3 * time.Millisecond, true, 0.5},
	{"detour single hop", 45, 2 * time.Millisecond, true, 1},
	{"detour two-hop", 20, 6 * time.Millisecond, true, 1},
}

func TestTargets(t *testing.T) {
	one, four := layout{Cores: 1}, layout{Cores: 4}
	rep := &reportData{data: []*dataPath{fixture(one, fixtureRows...), fixture(four, fixtureRows...)}}
	got := rep.targets()
	for _, want := range []string{
		"| single-hop gRPC unary ≥ 1.0× haproxy h2 | 1 core | 1.12× (45 vs 40 per second) | yes |",
		// haproxy used half a CPU-second per second: 80 per CPU-second.
		"| (the same, per proxy CPU-second) | 1 core | 0.56× (45 vs 80 per CPU-second) | **no** |",
		"| single-hop gRPC unary p99 ≤ 1.5× the better peer's | 1 core | 1.00× (2.00 ms vs 2.00 ms) | yes |",
		"| single-hop HTTP/1.1 ≥ 1.0× nginx http | 1 core | 0.90× (45 vs 50 per second) | **no** |",
		"| single-hop HTTP/1.1 ≥ 0.9× nginx http | 4 cores | 0.90× (45 vs 50 per second) | yes |",
		"| single-hop L4 (HTTP over TCP) ≥ 1.0× nginx stream | 4 cores | 0.90×",
		"| single-hop L4 bulk ≥ 1.0× nginx stream | 1 core | 0.90×",
		"| single-hop L4 p99 ≤ 1.5× the better peer's | 4 cores | 1.00×",
		"| sidecar memory at rest < 30 MB | 1 core | 20.0 MiB",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
	// A run without the peers' gRPC rows says so rather than passing.
	d := fixture(one, fixtureRows...)
	d.find("haproxy").Unary = nil
	rep = &reportData{data: []*dataPath{d}}
	if got := rep.targets(); !strings.Contains(got, "| single-hop gRPC unary ≥ 1.0× haproxy h2 | 1 core | 0.00× (45 vs 0 per second) | – |") {
		t.Errorf("missing peer not shown as unmeasured:\n%s", got)
	}
}

func TestTables(t *testing.T) {
	d := fixture(layout{Cores: 1}, fixtureRows...)
	grpc := d.grpcTable()
	for _, want := range []string{
		"| path | calls | per second | p50 ms | p99 ms | vs direct | vs haproxy h2 | p99 vs better peer | per proxy CPU-s | per CPU-s vs haproxy h2 | range |",
		"| direct | unary | 100 | 0.500 | 1.00 | 1.00× | 2.50× | 0.50× | – | – |",
		"| nginx grpc_pass | unary | 50 | 1.00 | 2.00 | 0.50× | 1.25× | 1.00× | 50 | 0.62× |",
		"| haproxy h2 | stream messages | 40 | 1.50 | 3.00 | 0.40× | 1.00× | 1.50× | 80 | 1.00× |",
		"| detour two-hop | stream messages | 20 | 3.00 | 6.00 | 0.20× | 0.50× | 3.00× | 20 | 0.25× |",
	} {
		if !strings.Contains(grpc, want) {
			t.Errorf("gRPC table lacks %q:\n%s", want, grpc)
		}
	}
	if http := d.httpTable(); !strings.Contains(http, "| detour single hop | 45 | 1.00 | 2.00 | 0.45× | 0.90× | 1.00× | 45 | 0.90× |") {
		t.Errorf("HTTP/1.1 table lacks the per-CPU columns:\n%s", http)
	}
	if l4 := d.l4Table(); !strings.Contains(l4, "| haproxy mode tcp | 40 | 1.50 | 3.00 | 0.40× | 0.80× | 1.50× | 80 | 1.60× |") {
		t.Errorf("L4 table lacks the per-CPU columns:\n%s", l4)
	}
	if res := d.resourceTable(); !strings.Contains(res, "| haproxy | 20.0 | 0.0 | 12500.0 | 12500.0 | 12500.0 | 12500.0 |") {
		t.Errorf("resource table:\n%s", res)
	}
}

func TestReportHasEveryConfiguration(t *testing.T) {
	four := layout{Cores: 4, ProxyCPU: "1", AppCPU: "0", LoadCPU: "0", AppWorkers: 1, Threads: 4, Conns: 256,
		GRPCConc: 128, GRPCConns: 4, LoadProcs: 1, Crowded: true}
	rep := &reportData{cfg: config{reps: 1, duration: time.Second}, data: []*dataPath{
		fixture(layout{Cores: 1, ProxyCPU: "1", AppWorkers: 1, Threads: 1, Conns: 32, GRPCConc: 32, GRPCConns: 1, LoadProcs: 1}, fixtureRows...),
		fixture(four, fixtureRows...)}}
	out := filepath.Join(t.TempDir(), "report.md")
	if err := rep.write(out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	got := string(b)
	for _, want := range []string{
		"Configurations: 1 core and 4 cores (crowded)",
		"## Data path, 1 core\n",
		"### gRPC (HTTP/2), 4 cores (crowded)\n",
		"| single-hop HTTP/1.1 ≥ 0.9× nginx http | 4 cores (crowded) |",
		"Proxies: 4 worker(s) each, CPU 1.",
		"`wrk -t4 -c256`; gRPC 128 concurrent calls or streams on 4 connection(s)",
		"**Crowded:**",
		"- detour sidecar: built from this checkout",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Count(got, "**Crowded:**") != 1 {
		t.Errorf("the one-core configuration is marked crowded too")
	}
}

func TestLayouts(t *testing.T) {
	auto := overrides{proxyCPU: "auto", appCPU: "auto", loadCPU: "auto"}
	// Two CPUs: today's one configuration.
	ls, err := layouts(2, nil, auto)
	if err != nil {
		t.Fatal(err)
	}
	want := layout{Cores: 1, ProxyCPU: "1", AppCPU: "0", LoadCPU: "0", AppWorkers: 1, Threads: 1, Conns: 32,
		GRPCConc: 32, GRPCConns: 1, LoadProcs: 1}
	if len(ls) != 1 || ls[0] != want {
		t.Fatalf("2 CPUs: %+v, want [%+v]", ls, want)
	}
	// Sixteen: one core and four, each part on CPUs of its own.
	ls, err = layouts(16, nil, auto)
	if err != nil {
		t.Fatal(err)
	}
	want1 := layout{Cores: 1, ProxyCPU: "1", AppCPU: "5-8", LoadCPU: "9-12", AppWorkers: 4, Threads: 4, Conns: 64,
		GRPCConc: 32, GRPCConns: 1, LoadProcs: 4}
	want4 := layout{Cores: 4, ProxyCPU: "1-4", AppCPU: "5-8", LoadCPU: "9-12", AppWorkers: 4, Threads: 4, Conns: 256,
		GRPCConc: 128, GRPCConns: 4, LoadProcs: 4}
	if len(ls) != 2 || ls[0] != want1 || ls[1] != want4 {
		t.Fatalf("16 CPUs: %+v", ls)
	}
	// Twelve: the load gets the three left.
	ls, _ = layouts(12, nil, auto)
	if len(ls) != 2 || ls[1].LoadCPU != "9-11" || ls[1].LoadProcs != 3 {
		t.Fatalf("12 CPUs: %+v", ls)
	}
	// Forced four cores on a small machine: runs, marked crowded.
	for _, n := range []int{2, 8} {
		ls, _ = layouts(n, []int{4}, auto)
		if len(ls) != 1 || ls[0].Cores != 4 || !ls[0].Crowded || ls[0].GRPCConns != 4 || ls[0].Conns != 256 || ls[0].ProxyCPU != "1" {
			t.Fatalf("-cores 4 on %d CPUs: %+v", n, ls)
		}
	}
	// Flags win over the automatic choice.
	ls, _ = layouts(16, []int{4}, overrides{proxyCPU: "", appCPU: "3", loadCPU: "auto", conns: 10, grpcConc: 2})
	if l := ls[0]; l.ProxyCPU != "" || l.AppCPU != "3" || l.LoadCPU != "9-12" || l.Conns != 10 || l.GRPCConc != 2 || l.GRPCConns != 2 {
		t.Fatalf("overrides: %+v", l)
	}
	if _, err := layouts(12, []int{8}, auto); err == nil {
		t.Fatal("8 cores on 12 CPUs: accepted")
	}
}

func TestParseCores(t *testing.T) {
	if c, err := parseCores(" 1, 4"); err != nil || len(c) != 2 || c[0] != 1 || c[1] != 4 {
		t.Fatalf("1,4: %v %v", c, err)
	}
	if c, err := parseCores(""); err != nil || c != nil {
		t.Fatalf("empty: %v %v", c, err)
	}
	for _, bad := range []string{"0", "x", "1,1", "1,", "65", "-4"} {
		if _, err := parseCores(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Chdir("../../..") // validate wants the repository root
	good := config{reps: 3, duration: 6 * time.Second, bulkDuration: 4 * time.Second}
	if err := good.validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, bad := range map[string]func(*config){
		"no reps":          func(c *config) { c.reps = 0 },
		"negative conns":   func(c *config) { c.over.conns = -1 },
		"negative gRPC":    func(c *config) { c.over.grpcConc = -1 },
		"half a second":    func(c *config) { c.duration = 1500 * time.Millisecond },
		"zero bulk time":   func(c *config) { c.bulkDuration = 0 },
		"missing sidecar":  func(c *config) { c.sidecar = "/nonexistent/sidecar" },
		"sidecar a folder": func(c *config) { c.sidecar = "bench" },
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

func TestSidecarLine(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sidecar")
	if err := os.WriteFile(bin, []byte("not a Go binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := sidecarLine(bin, "before: 4937e3f")
	for _, want := range []string{"`" + bin + "`", "**before: 4937e3f**", "sha256 "} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := sidecarLine("", ""); !strings.Contains(got, "built from this checkout") {
		t.Errorf("default: %q", got)
	}
}

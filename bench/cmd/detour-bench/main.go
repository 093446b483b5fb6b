// Command detour-bench is `make bench`: it measures detour's data path side
// by side with a direct connection, nginx and haproxy on the same machine
// in the same run, runs the control-plane benchmarks, and writes the
// report (docs/BENCHMARKS.md).
//
//	detour-bench [-quick] [-out FILE]       the benchmarks and the report
//	detour-bench -cores 1,4 ...             force the configurations (default: 1, and 4 on ≥ 12 CPUs)
//	DETOUR_BENCH_SIDECAR=BIN detour-bench   measure another sidecar binary (before/after)
//	detour-bench grpc-origin --listen ADDR  the gRPC app (started by the rig)
//	detour-bench grpc-load ...              the gRPC load generator (ditto)
//
// Run it through scripts/bench.sh, which installs the tools from Debian
// and starts ZooKeeper for the registry benchmarks.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/detourmesh/detour/bench/internal/grpcload"
	"github.com/detourmesh/detour/bench/internal/rig"
)

// config is the whole run's settings; every row of a table gets the same.
type config struct {
	quick        bool
	out          string
	dir          string
	reps         int
	duration     time.Duration // per wrk run
	grpcDuration time.Duration // per gRPC run
	bulkDuration time.Duration // per iperf3 run
	cores        string
	over         overrides
	sidecar      string
	sidecarLabel string
	dataPath     bool
	controlPlane bool
	hold         bool

	layouts []layout // from cores and over, for this machine
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "grpc-origin":
			exit(grpcOrigin(os.Args[2:]))
		case "grpc-load":
			exit(grpcLoad(os.Args[2:]))
		}
	}
	var c config
	flag.BoolVar(&c.quick, "quick", false, "the quick form (CI): one short run per row, nothing written to docs/")
	flag.StringVar(&c.out, "out", "", "the report (default docs/BENCHMARKS.md; with -quick, DIR/BENCHMARKS.quick.md)")
	flag.StringVar(&c.dir, "dir", "", "working directory (default: a new temporary one, removed afterwards)")
	flag.IntVar(&c.reps, "reps", 5, "repetitions of every data-path row (the report shows the median)")
	flag.StringVar(&c.cores, "cores", "", "configurations to run, as the proxies' worker counts, e.g. 1,4 (default: 1, and 4 as well on a machine of 12 or more CPUs)")
	flag.StringVar(&c.sidecar, "sidecar", os.Getenv("DETOUR_BENCH_SIDECAR"), "sidecar binary to measure instead of building this checkout's (default $DETOUR_BENCH_SIDECAR)")
	flag.StringVar(&c.sidecarLabel, "sidecar-label", os.Getenv("DETOUR_BENCH_SIDECAR_LABEL"), "what the -sidecar binary is, for the report (e.g. the commit it was built from)")
	flag.IntVar(&c.over.conns, "conns", 0, "wrk connections (default: 32 on a small machine, 64 per proxy core on a big one)")
	flag.IntVar(&c.over.grpcConc, "grpc-conc", 0, "concurrent gRPC calls or streams (default: 32 per proxy core, over one connection per core)")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "length of each wrk and gRPC run")
	flag.DurationVar(&c.bulkDuration, "bulk-duration", 4*time.Second, "length of each iperf3 run")
	flag.StringVar(&c.over.proxyCPU, "proxy-cpu", "auto", "CPUs every proxy under test is pinned to (taskset list; empty: no pinning)")
	flag.StringVar(&c.over.appCPU, "app-cpu", "auto", "CPUs of the apps (taskset list; empty: no pinning)")
	flag.StringVar(&c.over.loadCPU, "load-cpu", "auto", "CPUs of the load generators (taskset list; empty: no pinning)")
	flag.BoolVar(&c.dataPath, "data-path", true, "run the data-path benchmarks")
	flag.BoolVar(&c.controlPlane, "control-plane", true, "run the control-plane benchmarks (go test -bench)")
	flag.BoolVar(&c.hold, "hold", false, "start the rig, print its addresses and wait for Ctrl-C (to measure or profile by hand)")
	flag.Parse()
	c.grpcDuration = c.duration
	if c.quick {
		// gRPC runs are half as long, so the peers' rows cost CI no time.
		c.reps, c.duration, c.bulkDuration, c.grpcDuration = 1, time.Second, time.Second, 500*time.Millisecond
	}
	if err := c.validate(); err != nil {
		exit(err)
	}
	cores, err := parseCores(c.cores)
	if err != nil {
		exit(err)
	}
	if c.layouts, err = layouts(runtime.NumCPU(), cores, c.over); err != nil {
		exit(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	exit(runAll(ctx, c))
}

// validate refuses settings the tools would silently round or misread.
func (c config) validate() error {
	if _, err := os.Stat("go.mod"); err != nil {
		return fmt.Errorf("run from the repository's root (it builds the binaries and reads %s): %w", notesFile, err)
	}
	switch {
	case c.reps < 1:
		return fmt.Errorf("-reps %d: want at least 1", c.reps)
	case c.over.conns < 0:
		return fmt.Errorf("-conns %d: want at least 1 (or 0, the default)", c.over.conns)
	case c.over.grpcConc < 0:
		return fmt.Errorf("-grpc-conc %d: want at least 1 (or 0, the default)", c.over.grpcConc)
	case c.duration < time.Second || c.duration%time.Second != 0:
		return fmt.Errorf("-duration %v: want whole seconds, at least 1s (wrk takes seconds)", c.duration)
	case c.bulkDuration < time.Second || c.bulkDuration%time.Second != 0:
		return fmt.Errorf("-bulk-duration %v: want whole seconds, at least 1s (iperf3 takes seconds)", c.bulkDuration)
	}
	if c.sidecar != "" {
		if st, err := os.Stat(c.sidecar); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("-sidecar %q: not an executable file", c.sidecar)
		}
	}
	return nil
}

func runAll(ctx context.Context, c config) error {
	start := time.Now()
	if c.dir == "" {
		d, err := os.MkdirTemp("", "detour-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		c.dir = d
	}
	if c.out == "" {
		c.out = "docs/BENCHMARKS.md"
		if c.quick {
			c.out = filepath.Join(c.dir, "BENCHMARKS.quick.md")
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rep := &reportData{cfg: c, started: start.UTC()}
	if c.dataPath {
		for i, l := range c.layouts {
			// A directory per configuration: each rig's configs and logs
			// stay apart (kept with -dir, to read after a failure).
			dir := filepath.Join(c.dir, fmt.Sprintf("cores-%d", l.Cores))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			logf("data path, %s (proxies on CPU %q, apps %q, load %q): starting the apps, nginx, haproxy and two detour hosts in %s",
				l.name(), l.ProxyCPU, l.AppCPU, l.LoadCPU, dir)
			r, err := rig.Start(ctx, rig.Options{Dir: dir, Self: self, ProxyCPU: l.ProxyCPU, AppCPU: l.AppCPU,
				Workers: l.Cores, AppWorkers: l.AppWorkers, Sidecar: c.sidecar})
			if err != nil {
				return err
			}
			if c.hold && i == 0 {
				defer r.Close()
				return hold(ctx, r)
			}
			d := &dataPath{cfg: c, lay: l, self: self}
			for _, p := range r.Paths() {
				d.paths = append(d.paths, &pathResult{Path: p})
			}
			err = d.measure(ctx)
			r.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", l.name(), err)
			}
			rep.data = append(rep.data, d)
		}
	}
	if c.controlPlane {
		jobs, err := runGoBenches(ctx, c)
		if err != nil {
			return err
		}
		rep.jobs = jobs
	}
	rep.wall = time.Since(start)
	if err := rep.write(c.out); err != nil {
		return err
	}
	logf("report written to %s (%v)", c.out, rep.wall.Round(time.Second))
	if c.quick {
		b, _ := os.ReadFile(c.out)
		os.Stdout.Write(b)
	}
	return nil
}

// hold prints where everything is and waits until interrupted.
func hold(ctx context.Context, r *rig.Rig) error {
	for _, p := range r.Paths() {
		fmt.Printf("%-18s http=%s l4=%s bulk=%s grpc=%s\n", p.Name, p.HTTP, p.L4, p.Bulk, p.GRPC)
	}
	fmt.Printf("sidecar admin (/stats, /debug/pprof/): A=%s B=%s\nCtrl-C stops everything.\n", r.SidecarAdmin("A"), r.SidecarAdmin("B"))
	<-ctx.Done()
	return nil
}

func grpcOrigin(args []string) error {
	fs := flag.NewFlagSet("grpc-origin", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18090", "address to serve the greeter service on")
	fs.Parse(args)
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	return grpcload.Serve(lis)
}

func grpcLoad(args []string) error {
	fs := flag.NewFlagSet("grpc-load", flag.ExitOnError)
	target := fs.String("target", "", "host:port of the greeter service")
	mode := fs.String("mode", "unary", "unary or stream")
	conc := fs.Int("conc", 32, "concurrent calls (unary) or streams")
	conns := fs.Int("conns", 1, "connections the calls are spread over")
	d := fs.Duration("duration", 5*time.Second, "how long")
	fs.Parse(args)
	if *mode != string(grpcload.Unary) && *mode != string(grpcload.Stream) {
		return fmt.Errorf("grpc-load: --mode %q: want unary or stream", *mode)
	}
	r, err := grpcload.Run(context.Background(), *target, grpcload.Mode(*mode), *conc, *conns, *d)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "detour-bench: "+format+"\n", args...)
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "detour-bench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

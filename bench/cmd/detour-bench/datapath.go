package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/detourmesh/detour/bench/internal/grpcload"
	"github.com/detourmesh/detour/bench/internal/iperf"
	"github.com/detourmesh/detour/bench/internal/rig"
	"github.com/detourmesh/detour/bench/internal/wrk"
	"github.com/detourmesh/detour/internal/procstat"
)

// run is one measured run: rate, latency and what the proxies spent.
type run struct {
	Rate     float64 // requests (or calls, messages) per second; bits/s for bulk
	P50, P99 time.Duration
	Errors   int64
	CPU      time.Duration // CPU time of the proxy processes during the run
	Requests int64
}

// pathResult is every run of one path, per scenario.
type pathResult struct {
	Path             rig.Path
	HTTP, L4, Bulk   []run
	Unary, Stream    []run
	RSSRest, RSSPeak int64
	rssMu            sync.Mutex
}

// dataPath is one configuration's rows.
type dataPath struct {
	cfg   config
	lay   layout
	paths []*pathResult
	self  string
}

func (d *dataPath) measure(ctx context.Context) error {
	for _, p := range d.paths {
		if p.Path.Proxy() {
			rss, err := procstat.RSS(p.Path.ProxyPIDs())
			if err != nil {
				return fmt.Errorf("%s: memory at rest: %w", p.Path.Name, err)
			}
			p.RSSRest = rss
		}
	}
	wo := wrk.Options{Threads: d.lay.Threads, Conns: d.lay.Conns, Duration: d.cfg.duration, CPU: d.lay.LoadCPU}
	// Rows take turns within each repetition, so a disturbance of the
	// machine spreads over all of them rather than sinking one.
	for rep := range d.cfg.reps {
		logf("repetition %d of %d", rep+1, d.cfg.reps)
		for _, p := range d.paths {
			r, err := d.timed(ctx, p, func() (run, error) { return wrkRun(ctx, wo, "http://"+p.Path.HTTP+"/") })
			if err != nil {
				return fmt.Errorf("%s HTTP/1.1: %w", p.Path.Name, err)
			}
			p.HTTP = append(p.HTTP, r)
		}
		for _, p := range d.paths {
			// HTTP/1.1 over the L4 path: the same load generator, so the
			// L4 rows have latency figures too.
			r, err := d.timed(ctx, p, func() (run, error) { return wrkRun(ctx, wo, "http://"+p.Path.L4+"/") })
			if err != nil {
				return fmt.Errorf("%s L4: %w", p.Path.Name, err)
			}
			p.L4 = append(p.L4, r)
		}
		for _, p := range d.paths {
			host, port := splitAddr(p.Path.Bulk)
			r, err := d.timed(ctx, p, func() (run, error) {
				bps, err := iperf.Run(ctx, host, port, d.cfg.bulkDuration, d.lay.LoadCPU)
				return run{Rate: bps}, err
			})
			if err != nil {
				return fmt.Errorf("%s bulk: %w", p.Path.Name, err)
			}
			p.Bulk = append(p.Bulk, r)
		}
		for _, p := range d.paths {
			if p.Path.GRPC == "" {
				continue
			}
			for _, mode := range []grpcload.Mode{grpcload.Unary, grpcload.Stream} {
				r, err := d.timed(ctx, p, func() (run, error) { return d.grpcRun(ctx, p.Path.GRPC, mode) })
				if err != nil {
					return fmt.Errorf("%s gRPC %s: %w", p.Path.Name, mode, err)
				}
				if mode == grpcload.Unary {
					p.Unary = append(p.Unary, r)
				} else {
					p.Stream = append(p.Stream, r)
				}
			}
		}
	}
	return nil
}

// timed runs f while it watches the path's proxy processes: their CPU
// time over the run and their peak memory.
func (d *dataPath) timed(ctx context.Context, p *pathResult, f func() (run, error)) (run, error) {
	if !p.Path.Proxy() {
		return f()
	}
	pids := p.Path.ProxyPIDs()
	cpu0, err := procstat.CPU(pids)
	if err != nil {
		return run{}, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := procstat.RSS(pids); err == nil {
				p.rssMu.Lock()
				p.RSSPeak = max(p.RSSPeak, rss)
				p.rssMu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	r, err := f()
	close(stop)
	wg.Wait()
	if err != nil {
		return r, err
	}
	cpu1, err := procstat.CPU(pids)
	if err != nil {
		return r, fmt.Errorf("a proxy process is gone: %w", err)
	}
	r.CPU = cpu1 - cpu0
	return r, nil
}

func wrkRun(ctx context.Context, o wrk.Options, url string) (run, error) {
	w, err := wrk.Run(ctx, o, url)
	if err != nil {
		return run{}, err
	}
	if w.Errors > 0 || w.Non2xx3xx > 0 {
		return run{}, fmt.Errorf("%s: %d socket errors (%s), %d non-2xx answers of %d requests", url, w.Errors, w.ErrorKind, w.Non2xx3xx, w.Requests)
	}
	return run{Rate: w.RPS, P50: w.P50, P99: w.P99, Requests: w.Requests}, nil
}

// grpcRun runs the gRPC load generator as a process of its own, pinned
// like wrk, so it never shares the proxies' CPU.
func (d *dataPath) grpcRun(ctx context.Context, target string, mode grpcload.Mode) (run, error) {
	argv := []string{d.self, "grpc-load", "--target", target, "--mode", string(mode),
		"--conc", strconv.Itoa(d.lay.GRPCConc), "--conns", strconv.Itoa(d.lay.GRPCConns), "--duration", d.cfg.grpcDuration.String()}
	if d.lay.LoadCPU != "" {
		argv = append([]string{"taskset", "-c", d.lay.LoadCPU}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), "GOMAXPROCS="+strconv.Itoa(d.lay.LoadProcs))
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return run{}, fmt.Errorf("grpc-load: %w: %s", err, ee.Stderr)
		}
		return run{}, err
	}
	var r grpcload.Result
	if err := json.Unmarshal(out, &r); err != nil {
		return run{}, fmt.Errorf("grpc-load output: %w", err)
	}
	if r.Errors > 0 {
		return run{}, fmt.Errorf("grpc-load %s %s: %d failed calls of %d", mode, target, r.Errors, r.Calls+r.Errors)
	}
	return run{Rate: r.PerSecond(), P50: r.P50, P99: r.P99, Requests: r.Calls}, nil
}

func splitAddr(a string) (string, int) {
	h, p, _ := net.SplitHostPort(a)
	n, _ := strconv.Atoi(p)
	return h, n
}

// Command sidecar runs detour's data plane: egress, ingress, health and
// admin listeners, driven only by the naming agent's control stream.
//
//	sidecar --agent 127.0.0.1:7701 --host-ip 10.0.0.5 --admin 127.0.0.1:7702
//
// See sidecar/README.md for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/detourmesh/detour/sidecar/admin"
	"github.com/detourmesh/detour/sidecar/control"
	"github.com/detourmesh/detour/sidecar/dataplane"
)

const build = "detour-sidecar dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

type flags struct {
	agent, admin, logLevel string
	drain                  time.Duration
	pprof                  bool
	dp                     dataplane.Config
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	f := flags{dp: dataplane.Default()}
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.agent, "agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:7702", "admin address: /ready /stats /config /metrics")
	fs.StringVar(&f.dp.HostIP, "host-ip", "", "this host's address; snapshots for another host_ip are rejected (empty: any)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof/ on the admin address")
	fs.DurationVar(&f.drain, "drain-timeout", 15*time.Second, "on SIGTERM, how long in-flight work may finish")
	fs.BoolVar(&f.dp.Bypass, "bypass", f.dp.Bypass, "send to a remote app directly when its sidecar is down and the app is up")
	fs.DurationVar(&f.dp.IdleTimeout, "idle-timeout", f.dp.IdleTimeout, "close connections idle this long (0: never)")
	fs.IntVar(&f.dp.MaxConnections, "max-connections", f.dp.MaxConnections, "per-cluster connection (L4) or request (L7) limit")
	fs.StringVar(&f.dp.LBPolicy, "lb-policy", f.dp.LBPolicy, "least_request or round_robin")
	fs.DurationVar(&f.dp.OutlierInterval, "outlier-interval", f.dp.OutlierInterval, "decay step of the ejection multiplier")
	fs.IntVar(&f.dp.RetryBudgetPercent, "retry-budget-percent", f.dp.RetryBudgetPercent, "share of requests in flight that may be retries")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if _, _, err := net.SplitHostPort(f.admin); err != nil {
		return f, fmt.Errorf("--admin: %w", err)
	}
	return f, f.dp.Validate()
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "sidecar:", err)
		return 2
	}
	var level zapcore.Level
	if err := level.Set(f.logLevel); err != nil {
		fmt.Fprintln(stderr, "sidecar: --log-level:", err)
		return 2
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	log, err := zc.Build()
	if err != nil {
		fmt.Fprintln(stderr, "sidecar:", err)
		return 1
	}
	defer log.Sync()

	dp, err := dataplane.New(f.dp, dataplane.WithLogger(log))
	if err != nil {
		log.Error("config", zap.Error(err))
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(dp.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", f.admin)
	if err != nil {
		log.Error("admin listen", zap.Error(err))
		return 1
	}
	var h http.Handler = admin.Handler(dp, reg)
	if f.pprof {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		h = mux
	}
	adminSrv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go adminSrv.Serve(ln)

	cctx, cancel := context.WithCancel(ctx)
	cfg := control.Default(f.agent)
	cfg.AdminAddr, cfg.Build = ln.Addr().String(), build
	done := make(chan struct{})
	go func() {
		defer close(done)
		control.New(cfg, dp, log).Run(cctx)
	}()
	log.Info("sidecar started", zap.String("agent", f.agent), zap.String("admin", ln.Addr().String()))

	<-ctx.Done()
	log.Info("draining", zap.Duration("deadline", f.drain))
	dctx, dcancel := context.WithTimeout(context.Background(), f.drain)
	defer dcancel()
	// Not ready first, so the agent sends traffic around us, then stop
	// accepting and let work in flight finish.
	err = dp.Shutdown(dctx)
	cancel()
	<-done
	adminSrv.Close()
	if err != nil {
		log.Warn("drain incomplete", zap.Error(err))
		return 1
	}
	log.Info("stopped")
	return 0
}

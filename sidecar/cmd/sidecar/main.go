// Command sidecar runs detour's data plane: egress, ingress, health and
// admin listeners, driven only by the naming agent's control stream.
//
//	sidecar --agent 127.0.0.1:7701 --host-ip 10.0.0.5 --admin 127.0.0.1:7702
//	sidecar --version
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
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/detourmesh/detour/internal/httpbody"
	"github.com/detourmesh/detour/internal/version"
	"github.com/detourmesh/detour/sidecar/admin"
	"github.com/detourmesh/detour/sidecar/control"
	"github.com/detourmesh/detour/sidecar/dataplane"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	agent, admin, logLevel string
	secretFile             string
	pidFile                string
	drain                  time.Duration
	pprof, version         bool
	checkConfig, reload    bool
	handoverTimeout        time.Duration
	dp                     dataplane.Config
}

// errUsage: the command line is wrong, and stderr has been told why and
// shown the usage.
var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	f := flags{dp: dataplane.Default()}
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.agent, "agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:7702", "admin address: /ready /stats /config /metrics")
	fs.StringVar(&f.secretFile, "agent-secret-file", "/var/lib/detour/sidecar.secret", "the agent's per-boot secret, DATA_DIR/sidecar.secret (read at each dial)")
	fs.StringVar(&f.dp.HostIP, "host-ip", "", "this host's address; snapshots for another host_ip are rejected (empty: any)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof/ on the admin address")
	fs.DurationVar(&f.drain, "drain-timeout", 15*time.Second, "on SIGTERM, how long in-flight work may finish")
	fs.BoolVar(&f.dp.Bypass, "bypass", f.dp.Bypass, "send to a remote app directly when its sidecar is down and the app is up")
	fs.DurationVar(&f.dp.IdleTimeout, "idle-timeout", f.dp.IdleTimeout, "close connections idle this long (0: never)")
	fs.DurationVar(&f.dp.HeadTimeout, "head-timeout", f.dp.HeadTimeout, "an HTTP request head must come whole within this long (0: no limit)")
	fs.DurationVar(&f.dp.UpstreamIdleTimeout, "upstream-idle-timeout", f.dp.UpstreamIdleTimeout, "close pooled L7 upstream connections idle this long")
	fs.IntVar(&f.dp.ListenerMaxConnections, "listener-max-connections", f.dp.ListenerMaxConnections, "per-listener cap on open connections (0: none)")
	fs.IntVar(&f.dp.MaxConnections, "max-connections", f.dp.MaxConnections, "per-cluster connection (L4) or request (L7) limit")
	fs.StringVar(&f.dp.LBPolicy, "lb-policy", f.dp.LBPolicy, "least_request or round_robin")
	fs.DurationVar(&f.dp.OutlierInterval, "outlier-interval", f.dp.OutlierInterval, "decay step of the ejection multiplier")
	fs.IntVar(&f.dp.RetryBudgetPercent, "retry-budget-percent", f.dp.RetryBudgetPercent, "share of requests in flight that may be retries")
	fs.StringVar(&f.dp.AccessLog, "access-log", f.dp.AccessLog, "the access log's file (JSON lines), - for stdout")
	fs.StringVar(&f.dp.AccessLogMode, "access-log-mode", f.dp.AccessLogMode, "off, sampled or full")
	fs.Float64Var(&f.dp.AccessLogSample, "access-log-sample", f.dp.AccessLogSample, "share of requests and connections logged when sampled (0-1]")
	fs.StringVar(&f.dp.OTLPEndpoint, "otlp-endpoint", "", "OpenTelemetry collector (OTLP/gRPC host:port, plaintext) for a span per L7 request and hop; empty: no traces")
	fs.Float64Var(&f.dp.TraceSample, "trace-sample", f.dp.TraceSample, "share of traces kept when the caller did not decide (0-1)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.BoolVar(&f.reload, "reload", false, "upgrade: signal the serving sidecar ($MAINPID, else --pid-file) to hand its sockets to a fresh start of its binary; exit 0 when the new process serves, 1 when it failed (the old one keeps serving)")
	fs.DurationVar(&f.handoverTimeout, "handover-timeout", 30*time.Second, "how long a new process may take to serve before the hand-over is abandoned")
	fs.StringVar(&f.pidFile, "pid-file", "", "write this process's PID here while it serves (systemd PIDFile=); empty: none")
	fs.BoolVar(&f.checkConfig, "check-config", false, "validate the flags, print what is wrong naming the flag, and exit (0 valid, 2 not)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, err
		}
		return f, errUsage // the FlagSet printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "sidecar: unexpected argument %q (everything is set by flags and the agent)\n", fs.Arg(0))
		fs.Usage()
		return f, errUsage
	}
	if f.version {
		return f, nil
	}
	if _, _, err := net.SplitHostPort(f.admin); err != nil {
		return f, fmt.Errorf("--admin: %w", err)
	}
	return f, f.dp.Validate()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "sidecar:", err)
		return 2
	case f.version:
		fmt.Fprintln(stdout, version.String("sidecar"))
		return 0
	case f.checkConfig:
		fmt.Fprintln(stdout, "sidecar: flags valid")
		return 0
	case f.reload:
		return reload(f.pidFile, f.handoverTimeout+5*time.Second, stdout, stderr)
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

	ho, err := inherit()
	if err != nil {
		log.Error("hand-over", zap.Error(err))
		return 1
	}
	socks := newSockets()
	if ho != nil {
		socks.gate = make(chan struct{})
		for addr, fd := range ho.Listeners {
			socks.inherited[addr] = fdFile(fd, addr)
		}
	}
	dp, err := dataplane.New(f.dp, dataplane.WithLogger(log), dataplane.WithListen(socks.listen))
	if err != nil {
		log.Error("config", zap.Error(err))
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(dp.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := listenAdmin(f.admin, ho)
	if err != nil {
		log.Error("admin listen: is another sidecar running? (upgrade one with sidecar --reload)", zap.Error(err))
		return 1
	}
	if ho != nil {
		if err := takeOver(ctx, dp, socks, ho); err != nil {
			log.Error("hand-over: the old process keeps serving", zap.Error(err))
			return 1
		}
		log.Info("took over the listening sockets", zap.Int("listeners", len(ho.Listeners)))
	}
	defer removePIDFile(f.pidFile)
	var h http.Handler = admin.Handler(dp, reg)
	if f.pprof {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		h = httpbody.Limit(admin.MaxBodyBytes, mux) // pprof's routes too
	}
	adminSrv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go adminSrv.Serve(ln)

	cctx, cancel := context.WithCancel(ctx)
	cfg := control.Default(f.agent)
	cfg.AdminAddr, cfg.Build, cfg.HostIP = ln.Addr().String(), version.String("sidecar"), f.dp.HostIP
	cfg.SecretFile = f.secretFile
	cfg.Instance = instanceName(ho)
	done := make(chan struct{})
	cdp := &firstApply{Dataplane: dp, applied: make(chan struct{})}
	var controlOnce sync.Once
	startControl := func() {
		controlOnce.Do(func() {
			go func() {
				defer close(done)
				control.New(cfg, cdp, log).Run(cctx)
			}()
		})
	}
	if ho == nil {
		startControl()
	}
	log.Info("sidecar started", zap.String("agent", f.agent), zap.String("admin", ln.Addr().String()))
	// systemd Type=notify: ready once the first config is applied (a
	// successor: once the inherited one is); then the PID file names us,
	// and a successor's control stream starts (the agent sees it as a
	// reconnect of the same instance).
	go notifyWhenReady(cctx, dp, log, func() {
		if ho != nil {
			// Our control stream (the old one's instance) must have
			// replaced the old process's before that one closes its own:
			// the agent then never sees its sidecar disconnected.
			startControl()
			cdp.wait(cctx, log, f.handoverTimeout/2)
		}
		if err := writePIDFile(f.pidFile); err != nil {
			log.Error("pid file", zap.Error(err))
		}
		if ho != nil {
			if err := sayReady(ho); err != nil {
				log.Error("hand-over: telling the old process", zap.Error(err))
			}
		}
	})

	if code, handedOver := serveUntil(ctx, f, log, dp, ln, socks, cfg.Instance, adminSrv, cancel, done); handedOver {
		return code
	}
	log.Info("draining", zap.Duration("deadline", f.drain))
	dctx, dcancel := context.WithTimeout(context.Background(), f.drain)
	defer dcancel()
	// Not ready first, so the agent sends traffic around us, then stop
	// accepting and let work in flight finish.
	err = dp.Shutdown(dctx)
	cancel()
	startControl() // a successor stopped before it was ready never started it
	<-done
	adminSrv.Close()
	if err != nil {
		log.Warn("drain incomplete", zap.Error(err))
		return 1
	}
	log.Info("stopped")
	return 0
}

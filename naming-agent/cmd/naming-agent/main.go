// Command naming-agent runs detour's naming agent: one per host, the
// host's only registry client, the local API apps publish and resolve
// through, and the control plane of the host's sidecar.
//
//	naming-agent --config /etc/detour/agent.yaml [--host-ip IP] [--registry URL]
//	             [--data-dir DIR] [--http-listen ADDR] [--grpc-listen ADDR] [--log-level LEVEL]
//	             [--zookeeper-listen ADDR] [--nacos-listen ADDR] [--etcd-listen ADDR]
//	naming-agent --version
//
// Flags override the file. See naming-agent/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/detourmesh/detour/internal/version"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/api"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/naming-agent/internal/datadir"
	"github.com/detourmesh/detour/naming-agent/internal/sessionfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = restartOnSignal(ctx) // SIGUSR2: stop keeping the registry session (package upgrades)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, registries(), notifyReady)
	if code == 0 && keepSession.Load() {
		code = exitRestart
	}
	os.Exit(code)
}

// flags are the command line; those set override the config file.
type flags struct {
	config, hostIP, registry, dataDir, httpListen, grpcListen, logLevel string
	zookeeperListen, nacosListen, etcdListen                            string
	set                                                                 map[string]bool
	version, checkConfig                                                bool
}

// errUsage: the command line is wrong, and stderr has been told why and
// shown the usage.
var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("naming-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "YAML config file (default: built-in defaults)")
	fs.StringVar(&f.hostIP, "host-ip", "", "address other hosts reach this host at (host_ip)")
	fs.StringVar(&f.registry, "registry", "", "embedded | etcd://h:p[,h:p] | zookeeper://h:p[,h:p] | nacos://h:p?namespace=N&group=G (registry.url)")
	fs.StringVar(&f.dataDir, "data-dir", "", "port assignment, endpoint cache, embedded registry data (data_dir)")
	fs.StringVar(&f.httpListen, "http-listen", "", "HTTP API address (http_listen)")
	fs.StringVar(&f.grpcListen, "grpc-listen", "", "gRPC API and sidecar control address (grpc_listen)")
	fs.StringVar(&f.zookeeperListen, "zookeeper-listen", "", "serve ZooKeeper's protocol to this host's Dubbo apps here, e.g. 127.0.0.1:2181 (frontends.zookeeper.listen; off by default)")
	fs.StringVar(&f.nacosListen, "nacos-listen", "", "serve Nacos's naming API to this host's apps here (HTTP; gRPC on port + 1000), e.g. 127.0.0.1:8848 (frontends.nacos.listen; off by default)")
	fs.StringVar(&f.etcdListen, "etcd-listen", "", "serve etcd's v3 API to this host's apps here, e.g. 127.0.0.1:2379 (frontends.etcd.listen; off by default; registry etcd:// or embedded)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.BoolVar(&f.checkConfig, "check-config", false, "validate the config file and flags, print each problem as FILE:LINE: field: why, and exit (0 valid, 2 not)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, err
		}
		return f, errUsage // the FlagSet printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "naming-agent: unexpected argument %q (everything is set by flags or the config file)\n", fs.Arg(0))
		fs.Usage()
		return f, errUsage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// loadConfig reads the file (if any), applies the flags that were set,
// and validates the result.
func loadConfig(f flags) (config.Config, error) {
	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return cfg, err
		}
	}
	override := func(name string, dst *string, v string) {
		if f.set[name] {
			*dst = v
		}
	}
	override("host-ip", &cfg.HostIP, f.hostIP)
	override("registry", &cfg.Registry.URL, f.registry)
	override("data-dir", &cfg.DataDir, f.dataDir)
	override("http-listen", &cfg.HTTPListen, f.httpListen)
	override("grpc-listen", &cfg.GRPCListen, f.grpcListen)
	override("zookeeper-listen", &cfg.Frontends.ZooKeeper.Listen, f.zookeeperListen)
	override("nacos-listen", &cfg.Frontends.Nacos.Listen, f.nacosListen)
	override("etcd-listen", &cfg.Frontends.Etcd.Listen, f.etcdListen)
	if err := cfg.LoadTokens(os.Getenv); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func newLogger(level string, stderr io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(stderr), lvl)
	return zap.New(core), nil
}

// run is main without the process: it returns the exit code. ready, if
// not nil, is told the bound API addresses once the agent serves.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, kinds map[string]newRegistry, ready func(httpAddr, grpcAddr string)) int {
	f, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	case f.version:
		fmt.Fprintln(stdout, version.String("naming-agent"))
		return 0
	}
	cfg, err := loadConfig(f)
	if err != nil {
		if f.config != "" {
			fmt.Fprintf(stderr, "naming-agent: %s\n", locate(f.config, err))
		} else {
			fmt.Fprintf(stderr, "naming-agent: %v\n", err)
		}
		return 2
	}
	if f.checkConfig {
		fmt.Fprintf(stdout, "naming-agent: config %s valid\n", f.config)
		return 0
	}
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "naming-agent: %v\n", err)
		return 2
	}
	defer log.Sync()
	if err := serve(ctx, cfg, log, kinds, ready); err != nil {
		log.Error("naming-agent stopped", zap.Error(err))
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config.Config, log *zap.Logger, kinds map[string]newRegistry, ready func(string, string)) error {
	kind, _ := config.RegistryKind(cfg.Registry.URL) // validated
	build, ok := kinds[kind]
	if !ok {
		return fmt.Errorf("registry kind %q is not built in", kind)
	}
	// The data dir first: writable, and ours alone (a second agent on it
	// would hand out the same ports and fight over the registry session).
	dd, err := datadir.Open(cfg.DataDir)
	if err != nil {
		return err
	}
	defer dd.Close()
	secret, err := datadir.WriteSidecarSecret(cfg.DataDir)
	if err != nil {
		return err
	}
	// Listen before the registry is touched: an agent that cannot serve
	// must not take its earlier run's registry session back and then
	// close it, withdrawing the host's services.
	hl, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http_listen: %w", err)
	}
	defer hl.Close()
	gl, err := net.Listen("tcp", cfg.GRPCListen)
	if err != nil {
		return fmt.Errorf("grpc_listen: %w", err)
	}
	defer gl.Close()
	fe, err := listenFrontends(cfg.Frontends)
	if err != nil {
		return err
	}
	defer fe.stop()
	ef, err := listenEtcd(cfg.Frontends.Etcd)
	if err != nil {
		return err
	}
	defer ef.stop()
	metrics := agent.NewMetrics()
	store := sessionfile.New(filepath.Join(cfg.DataDir, "registry-session"))
	reg, err := build(cfg, log, func(svc, key string, err error) {
		metrics.Malformed(svc, key, err)
		log.Warn("registry entry skipped", zap.String("service", svc), zap.String("key", key), zap.Error(err))
	}, store)
	if err != nil {
		return err
	}
	defer func() {
		if !keepSession.Load() {
			reg.Close()
		}
	}()
	a, err := agent.New(cfg, reg, agent.WithLogger(log), agent.WithMetrics(metrics))
	if err != nil {
		return err
	}
	defer a.Close()
	if err := fe.serve(cfg, a.Frontend(), log); err != nil {
		return err
	}
	if err := ef.serve(cfg, reg, a.Frontend(), log, metrics.Malformed); err != nil {
		return err
	}

	hs := &http.Server{Handler: api.HTTPHandler(a, cfg.API, log), ReadHeaderTimeout: 10 * time.Second}
	gs := grpc.NewServer()
	api.RegisterGRPC(gs, a, api.WithSidecarLogger(log), api.WithAuth(cfg.API), api.WithSidecarSecret(secret))
	errs := make(chan error, 2)
	go func() { errs <- hs.Serve(hl) }()
	go func() { errs <- gs.Serve(gl) }()
	log.Info("naming-agent serving", zap.String("http", hl.Addr().String()), zap.String("grpc", gl.Addr().String()),
		zap.String("registry", config.RedactedURL(cfg.Registry.URL)), zap.String("host_ip", cfg.HostIP), zap.String("data_dir", cfg.DataDir),
		zap.Bool("api_token", cfg.API.Protected()))
	if ready != nil {
		ready(hl.Addr().String(), gl.Addr().String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	log.Info("naming-agent shutting down")
	fe.stop() // the apps' sessions are kept for the next run
	ef.stop() // its apps' keys and leases stay in the upstream etcd
	a.Close() // ends blocked queries, Subscribe and sidecar streams
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		gs.Stop()
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return serveErr
	}
	return nil
}

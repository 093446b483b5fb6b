package embedded

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is a single-member etcd server running in this process.
type Server struct {
	e         *embed.Etcd
	clientURL string
	log       *zap.Logger
	closeOnce sync.Once
}

// StartServer starts the etcd server of cfg and waits until it serves
// clients, at most cfg.StartTimeout. The registry options other than the
// loggers are ignored.
func StartServer(cfg Config, opts ...Option) (*Server, error) {
	o := options{logger: zap.NewNop(), etcdLogger: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := o.logger.Named("registry.embedded")
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	cu := url.URL{Scheme: "http", Host: cfg.ListenClient}
	pu := url.URL{Scheme: "http", Host: cfg.ListenPeer}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.InitialClusterToken = "detour-" + cfg.Name
	ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = strconv.FormatInt(int64(max(cfg.CompactionRetention/time.Second, 1)), 10) + "s"
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	// Clients speak gRPC; the JSON gateway only adds goroutines.
	ec.EnableGRPCGateway = false
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(o.etcdLogger)

	start := time.Now()
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded: start etcd in %s: %w", cfg.DataDir, err)
	}
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded: etcd in %s failed while starting: %w", cfg.DataDir, err)
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("embedded: etcd in %s not ready after %v", cfg.DataDir, cfg.StartTimeout)
	}
	if len(e.Clients) == 0 {
		e.Close()
		return nil, errors.New("embedded: etcd has no client listener")
	}
	s := &Server{e: e, clientURL: "http://" + e.Clients[0].Addr().String(), log: log}
	log.Info("etcd server ready", zap.String("addr", e.Clients[0].Addr().String()),
		zap.String("data_dir", cfg.DataDir), zap.Duration("took", time.Since(start)))
	return s, nil
}

// ClientURL is the URL clients reach the server at, with the port actually
// listened on: "http://127.0.0.1:2379".
func (s *Server) ClientURL() string { return s.clientURL }

// Endpoints are the client endpoints to hand an etcd client or another
// agent's etcd registry config.
func (s *Server) Endpoints() []string { return []string{s.clientURL} }

// Close stops the server. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.e.Close()
		s.log.Info("etcd server stopped")
	})
	return nil
}

package main

import (
	"errors"
	"fmt"
	"net"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/naming-agent/frontend"
	etcdfe "github.com/detourmesh/detour/naming-agent/frontend/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// etcdFrontend is the etcd front end: its port, bound before the
// registry is touched, and its server and upstream client once serving.
type etcdFrontend struct {
	ln  net.Listener // nil: off
	srv *etcdfe.Server
	up  *clientv3.Client
}

func listenEtcd(cfg etcdfe.Config) (*etcdFrontend, error) {
	e := &etcdFrontend{}
	if cfg.Listen == "" {
		return e, nil
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("frontends.etcd.listen: %w", err)
	}
	e.ln = l
	return e, nil
}

// upstreamEtcd is the etcd the registry is: its URL's hosts, or the
// embedded server's client address.
func upstreamEtcd(cfg config.Config, reg registry.Registry) ([]string, error) {
	if emb, ok := reg.(interface{ ClientURL() string }); ok {
		return []string{emb.ClientURL()}, nil
	}
	if kind, _ := config.RegistryKind(cfg.Registry.URL); kind == "etcd" {
		return hosts(cfg.Registry.URL), nil
	}
	return nil, errors.New("the etcd front end needs registry etcd:// or embedded")
}

// serve starts the front end on core, in front of the registry's etcd.
func (e *etcdFrontend) serve(cfg config.Config, reg registry.Registry, core frontend.Core, log *zap.Logger, malformed func(svc, key string, err error)) error {
	if e.ln == nil {
		return nil
	}
	eps, err := upstreamEtcd(cfg, reg)
	if err != nil {
		return fmt.Errorf("frontends.etcd: %w", err)
	}
	cc := clientv3.Config{Endpoints: eps, DialTimeout: cfg.Registry.DialTimeout, Logger: log.Named("etcdfe.upstream")}
	opts := []etcdfe.Option{etcdfe.WithLogger(log), etcdfe.WithHost(cfg.HostIP),
		etcdfe.WithMalformed(func(key string, err error) { malformed("etcd-frontend", key, err) })}
	if kind, _ := config.RegistryKind(cfg.Registry.URL); kind == "etcd" {
		// The agent's own credentials, as its registry adapter's.
		if cc.TLS, err = cfg.Registry.TLS.Load(); err != nil {
			return fmt.Errorf("frontends.etcd: %w", err)
		}
		if cc.Username = cfg.Registry.RegistryUser(); cc.Username != "" {
			cc.Password = cfg.Registry.Password.Reveal()
			opts = append(opts, etcdfe.WithAgentAuth())
		}
	}
	e.up, err = clientv3.New(cc)
	if err != nil {
		return fmt.Errorf("frontends.etcd: upstream %s: %w", strings.Join(eps, ","), err)
	}
	e.srv, err = etcdfe.New(cfg.Frontends.Etcd, core, e.up, opts...)
	if err != nil {
		return fmt.Errorf("frontends.etcd: %w", err)
	}
	go func() {
		if err := e.srv.Serve(e.ln); err != nil && !errors.Is(err, etcdfe.ErrClosed) {
			log.Error("etcd front end stopped", zap.Error(err))
		}
	}()
	log.Info("etcd front end serving: point etcd apps' endpoints here", zap.String("addr", e.ln.Addr().String()), zap.Strings("upstream", eps))
	return nil
}

// stop stops the server, or closes the listener if it never served.
func (e *etcdFrontend) stop() {
	if e.srv != nil {
		e.srv.Close()
	}
	if e.ln != nil {
		e.ln.Close()
	}
	if e.up != nil {
		e.up.Close()
	}
	e.srv, e.ln, e.up = nil, nil, nil // stop is deferred and called at shutdown
}

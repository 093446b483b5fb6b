package main

import (
	"errors"
	"fmt"
	"net"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/nacos"
)

// nacosFrontend is the Nacos front end: its two ports, bound before the
// registry is touched, and its server once serving.
type nacosFrontend struct {
	httpLn, grpcLn net.Listener // nil: off
	srv            *nacos.Server
}

// listenNacos binds the Nacos front end's ports (HTTP on listen, gRPC on
// its port + 1000), or nothing when it is off.
func listenNacos(cfg nacos.Config) (*nacosFrontend, error) {
	n := &nacosFrontend{}
	if cfg.Listen == "" {
		return n, nil
	}
	var err error
	if n.httpLn, n.grpcLn, err = nacos.Listen(cfg.Listen); err != nil {
		return nil, fmt.Errorf("frontends.nacos.listen: %w", err)
	}
	return n, nil
}

// serve starts the front end on core.
func (n *nacosFrontend) serve(cfg nacos.Config, core frontend.Core, log *zap.Logger) error {
	if n.httpLn == nil {
		return nil
	}
	srv, err := nacos.New(cfg, core, nacos.WithLogger(log))
	if err != nil {
		return fmt.Errorf("frontends.nacos: %w", err)
	}
	n.srv = srv
	go func() {
		if err := srv.Serve(n.httpLn, n.grpcLn); err != nil && !errors.Is(err, nacos.ErrClosed) {
			log.Error("nacos front end stopped", zap.Error(err))
		}
	}()
	log.Info("nacos front end serving: point Nacos apps' server-addr here",
		zap.String("http", n.httpLn.Addr().String()), zap.String("grpc", n.grpcLn.Addr().String()))
	return nil
}

// stop stops the server, or closes the listeners if it never served.
func (n *nacosFrontend) stop() {
	if n.srv != nil {
		n.srv.Close()
	}
	if n.httpLn != nil {
		n.httpLn.Close()
		n.grpcLn.Close()
	}
}

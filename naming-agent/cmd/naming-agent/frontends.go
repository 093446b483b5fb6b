package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/dubbo"
	"github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
	"github.com/detourmesh/detour/naming-agent/internal/sessionfile"
)

// frontends are the registry front ends the config turns on. Their
// addresses are bound before the registry is touched (a port already
// taken must not cost the host its registry session), and they serve
// once the agent is up.
type frontends struct {
	zk      net.Listener // nil: off
	nacos   *nacosFrontend
	close   []func()
	stopped bool
}

func listenFrontends(cfg config.Frontends) (*frontends, error) {
	f := &frontends{}
	if addr := cfg.ZooKeeper.Listen; addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("frontends.zookeeper.listen: %w", err)
		}
		f.zk = l
	}
	n, err := listenNacos(cfg.Nacos)
	if err != nil {
		f.stop()
		return nil, err
	}
	f.nacos = n
	return f, nil
}

// serve starts the front ends on core. Its apps' sessions are kept in the
// data dir, so they outlive the agent's restarts as its own do.
func (f *frontends) serve(cfg config.Config, core frontend.Core, log *zap.Logger) error {
	if err := f.nacos.serve(cfg.Frontends.Nacos, core, log); err != nil {
		return err
	}
	if f.zk == nil {
		return nil
	}
	rw := dubbo.NewRewriter(core, log)
	pt := newPassthrough(cfg.Frontends.ZooKeeper.Passthrough, core, log)
	srv, err := zookeeper.New(cfg.Frontends.ZooKeeper,
		zookeeper.WithLogger(log),
		zookeeper.WithOverlay(rw),
		zookeeper.WithObserver(zookeeper.Observers(rw, pt)),
		zookeeper.WithSessionStore(sessionfile.New(filepath.Join(cfg.DataDir, "zookeeper-sessions"))))
	if err != nil {
		rw.Close()
		pt.Close()
		return fmt.Errorf("frontends.zookeeper: %w", err)
	}
	rw.Start(srv.OverlayChanged)
	pt.Start(srv)
	go func() {
		if err := srv.Serve(f.zk); err != nil && !errors.Is(err, zookeeper.ErrClosed) {
			log.Error("zookeeper front end stopped", zap.Error(err))
		}
	}()
	f.close = append(f.close, func() { srv.Close(); rw.Close(); pt.Close() })
	log.Info("zookeeper front end serving: point Dubbo apps' registry here", zap.String("addr", f.zk.Addr().String()))
	return nil
}

// stop stops every front end, or closes its listener if it never served.
// It is idempotent.
func (f *frontends) stop() {
	if f.stopped {
		return
	}
	f.stopped = true
	for _, c := range f.close {
		c()
	}
	if f.zk != nil {
		f.zk.Close()
	}
	if f.nacos != nil {
		f.nacos.stop() // its apps reconnect to the next run and register again
	}
}

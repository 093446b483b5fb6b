package main

import (
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/dubbo"
	"github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
)

// storeCore is a Core that has a Store (the agent's does).
type storeCore interface {
	Store() (store frontend.Store, shared bool)
}

// newPassthrough is the ZooKeeper front end's pass-through of what apps
// write beside Dubbo's providers, through the registry where its
// adapter keeps such keys and in this agent only otherwise.
func newPassthrough(cfg zookeeper.PassthroughConfig, core frontend.Core, log *zap.Logger) *zookeeper.Passthrough {
	var store frontend.Store
	shared := false
	if sc, ok := core.(storeCore); ok {
		store, shared = sc.Store()
	} else {
		store = frontend.NewMemoryStore()
	}
	if !shared && len(cfg.Roots) > 0 {
		log.Warn("the registry adapter keeps no shared keys (Nacos): apps' nodes other than providers stay on this host",
			zap.Strings("roots", cfg.Roots))
	}
	return zookeeper.NewPassthrough(store, cfg, dubbo.Owns, log)
}

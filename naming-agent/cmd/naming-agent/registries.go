package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/nacos"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper"
)

// newRegistry builds the registry client of one kind from the agent's
// config. onMalformed counts entries the adapter skips.
// store keeps the adapter's session across restarts of the agent, for
// adapters that can take it back.
type newRegistry func(cfg config.Config, log *zap.Logger, onMalformed registry.MalformedFunc, store registry.SessionStore) (registry.Registry, error)

// registries is the explicit map of registry kinds (config.RegistryKind)
// to constructors.
func registries() map[string]newRegistry {
	return map[string]newRegistry{
		"embedded":  newEmbedded,
		"etcd":      newEtcd,
		"zookeeper": newZookeeper,
		"nacos":     newNacos,
	}
}

// hosts returns the comma-separated host:port list of a registry URL.
func hosts(url string) []string { return config.RegistryHosts(url) }

func etcdConfig(c config.Registry) etcd.Config {
	ec := etcd.Default()
	if c.Prefix != "" {
		ec.Prefix = c.Prefix
	}
	ec.LeaseTTL = c.SessionTTL
	ec.DialTimeout = c.DialTimeout
	ec.RequestTimeout = c.RequestTimeout
	return ec
}

func newEmbedded(cfg config.Config, log *zap.Logger, onMalformed registry.MalformedFunc, store registry.SessionStore) (registry.Registry, error) {
	ec := embedded.Default()
	ec.DataDir = filepath.Join(cfg.DataDir, "etcd")
	ec.ListenClient = cfg.Registry.Embedded.ClientListen
	ec.ListenPeer = cfg.Registry.Embedded.PeerListen
	ec.Registry = etcdConfig(cfg.Registry)
	if err := ec.Validate(); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r, err := embedded.New(ec, embedded.WithLogger(log), embedded.WithMalformedFunc(onMalformed), embedded.WithSessionStore(store))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	log.Info("embedded registry serving; other agents can use it", zap.String("url", "etcd://"+strings.TrimPrefix(r.ClientURL(), "http://")))
	return r, nil
}

func newEtcd(cfg config.Config, log *zap.Logger, onMalformed registry.MalformedFunc, store registry.SessionStore) (registry.Registry, error) {
	ec := etcdConfig(cfg.Registry)
	ec.Endpoints = hosts(cfg.Registry.URL)
	ec.Username, ec.Password = cfg.Registry.RegistryUser(), cfg.Registry.Password.Reveal()
	tc, err := cfg.Registry.TLS.Load()
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	ec.TLS = tc
	if err := ec.Validate(); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r, err := etcd.New(ec, etcd.WithLogger(log), etcd.WithMalformedFunc(onMalformed), etcd.WithSessionStore(store))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return r, nil
}

func newZookeeper(cfg config.Config, log *zap.Logger, onMalformed registry.MalformedFunc, store registry.SessionStore) (registry.Registry, error) {
	zc := zookeeper.Default()
	zc.Servers = hosts(cfg.Registry.URL)
	if cfg.Registry.Prefix != "" {
		zc.Root = cfg.Registry.Prefix
	}
	zc.SessionTimeout = cfg.Registry.SessionTTL
	zc.RequestTimeout = cfg.Registry.RequestTimeout
	zc.Username, zc.Password = cfg.Registry.RegistryUser(), cfg.Registry.Password.Reveal()
	if err := zc.Validate(); err != nil {
		return nil, fmt.Errorf("registry: zookeeper config: %w", err)
	}
	r, err := zookeeper.New(zc, zookeeper.WithLogger(log), zookeeper.WithMalformedFunc(onMalformed), zookeeper.WithSessionStore(store))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return r, nil
}

// newNacos: servers from the URL's host list, namespace and group from its
// query ("nacos://h:p?namespace=N&group=G").
// Nacos binds an instance to its gRPC connection: there is no session
// to take back, so store is not used (see registry-adapters/nacos).
func newNacos(cfg config.Config, log *zap.Logger, onMalformed registry.MalformedFunc, _ registry.SessionStore) (registry.Registry, error) {
	nc := nacos.Default()
	nc.Servers = hosts(cfg.Registry.URL)
	if _, rawQuery, ok := strings.Cut(cfg.Registry.URL, "?"); ok {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, fmt.Errorf("registry: nacos url query: %w", err)
		}

		if ns := q.Get("namespace"); ns != "" {
			nc.Namespace = ns
		}
		if g := q.Get("group"); g != "" {
			nc.Group = g
		}
	}
	nc.RequestTimeout = cfg.Registry.RequestTimeout
	nc.Username, nc.Password = cfg.Registry.RegistryUser(), cfg.Registry.Password.Reveal()
	if q := urlQuery(cfg.Registry.URL); q.Get("username") != "" && nc.Username == "" {
		nc.Username = q.Get("username")
	}
	if err := nc.Validate(); err != nil {
		// Validate's errors start "nacos config:" already.
		return nil, fmt.Errorf("registry: %w", err)
	}
	r, err := nacos.New(nc, nacos.WithLogger(log), nacos.WithMalformedFunc(onMalformed))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return r, nil
}

// urlQuery is the query of a registry URL; a bad one is empty (newNacos
// reports it).
func urlQuery(u string) url.Values {
	_, raw, _ := strings.Cut(u, "?")
	q, _ := url.ParseQuery(raw)
	return q
}

package embedded

import (
	"errors"
	"fmt"
	"sync"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

var (
	_ registry.Registry = (*Registry)(nil)
	_ registry.Resumer  = (*Registry)(nil)
)

// Registry is an etcd server in this process and the etcd registry on it.
// Register, Deregister, List and Watch are those of the etcd adapter.
type Registry struct {
	*etcd.Registry
	server    *Server
	closeOnce sync.Once
	closeErr  error
}

// New starts the server of cfg (see StartServer) and returns the registry
// on it.
func New(cfg Config, opts ...Option) (*Registry, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	srv, err := StartServer(cfg, opts...)
	if err != nil {
		return nil, err
	}
	rc := cfg.Registry
	rc.Endpoints = srv.Endpoints()
	ropts := []etcd.Option{etcd.WithMalformedFunc(o.onMalformed), etcd.WithSessionStore(o.store)}
	if o.logger != nil {
		ropts = append(ropts, etcd.WithLogger(o.logger))
	}
	reg, err := etcd.New(rc, ropts...)
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded: %w", err)
	}
	return &Registry{Registry: reg, server: srv}, nil
}

// Server returns the embedded server.
func (r *Registry) Server() *Server { return r.server }

// ClientURL is where other agents and tools reach the server; see
// Server.ClientURL.
func (r *Registry) ClientURL() string { return r.server.ClientURL() }

// Endpoints are ClientURL as a list, for an etcd client's config.
func (r *Registry) Endpoints() []string { return r.server.Endpoints() }

// Close closes the registry (revoking its lease, closing its client), then
// stops the server. It is idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.closeErr = errors.Join(r.Registry.Close(), r.server.Close())
	})
	return r.closeErr
}

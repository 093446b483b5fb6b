package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// FrontendStore returns where the front ends keep what apps write that
// is not a registration: the registry's own keys when its adapter has a
// registry.Store (ZooKeeper, etcd, embedded), shared true; otherwise
// (Nacos) a new frontend.MemoryStore, this agent's alone, shared false.
func (a *Agent) FrontendStore() (store frontend.Store, shared bool) {
	if rs, ok := a.reg.(registry.Store); ok {
		return registryStore{rs}, true
	}
	return frontend.NewMemoryStore(), false
}

// registryStore is a registry.Store as a front end uses it: a key the
// registry refuses, or a closed registry, is frontend.ErrRejected, so the
// front end does not retry it.
type registryStore struct{ rs registry.Store }

func (s registryStore) Put(ctx context.Context, key string, data []byte, ephemeral bool) error {
	return rejected(s.rs.PutKey(ctx, key, data, ephemeral))
}

func (s registryStore) Delete(ctx context.Context, key string) error {
	return rejected(s.rs.DeleteKey(ctx, key))
}

func (s registryStore) Watch(ctx context.Context, prefix string, skip func(string) bool, fn func(map[string][]byte)) error {
	return s.rs.WatchKeys(ctx, prefix, skip, fn)
}

func rejected(err error) error {
	if errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrClosed) {
		return fmt.Errorf("%w: %w", frontend.ErrRejected, err)
	}
	return err
}

// Store is the agent's FrontendStore, for front ends given only the Core.
func (c frontendCore) Store() (frontend.Store, bool) { return c.a.FrontendStore() }

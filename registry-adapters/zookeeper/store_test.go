package zookeeper

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestStoreConformance(t *testing.T) {
	e := newEnv(t)
	registrytest.StoreSuite(t, registrytest.StoreHarness{
		New: func(t testing.TB) registry.Registry {
			r, _ := e.newRegistry(t, nil)
			return r
		},
		LoseSession: func(t testing.TB, r registry.Registry) { e.loseSession(t, r.(*Registry)) },
		Root:        e.root + "/store",
	})
}

// TestStoreZooKeeperView: a key is the znode at its path, as any
// ZooKeeper client reads it; an ephemeral one is the session's.
func TestStoreZooKeeperView(t *testing.T) {
	e := newEnv(t)
	r, _ := e.newRegistry(t, nil)
	ctx := context.Background()
	mapping, consumer := e.root+"/dubbo/mapping/org.x.S", e.root+"/dubbo/org.x.S/consumers/c1"
	if err := r.PutKey(ctx, mapping, []byte("app"), false); err != nil {
		t.Fatal(err)
	}
	if err := r.PutKey(ctx, consumer, []byte("c"), true); err != nil {
		t.Fatal(err)
	}
	data, stat, err := e.raw.Get(mapping)
	if err != nil || string(data) != "app" || stat.EphemeralOwner != 0 {
		t.Errorf("raw mapping: %q %+v %v", data, stat, err)
	}
	data, stat, err = e.raw.Get(consumer)
	if err != nil || string(data) != "c" || stat.EphemeralOwner != r.conn.SessionID() {
		t.Errorf("raw consumer: %q owner %#x (session %#x) %v", data, stat.EphemeralOwner, r.conn.SessionID(), err)
	}
	// A node with children cannot go: refused, not retried.
	if err := r.DeleteKey(ctx, e.root+"/dubbo/org.x.S/consumers"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("DeleteKey of a node with children = %v, want ErrInvalid", err)
	}
	if err := r.PutKey(ctx, consumer+"/child", nil, false); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("PutKey under an ephemeral node = %v, want ErrInvalid", err)
	}
}

// TestStoreUnreachable: with the network cut a put fails as unavailable
// within the request timeout; the watch takes up again after it, with
// what changed meanwhile.
func TestStoreUnreachable(t *testing.T) {
	e := newEnv(t)
	writer, _ := e.newRegistry(t, nil)
	watcher, sw := e.newRegistry(t, nil, func(c *Config) { c.RequestTimeout = time.Second })
	ctx := context.Background()
	key := e.root + "/dubbo/config/app"
	if err := writer.PutKey(ctx, key, []byte("v1"), false); err != nil {
		t.Fatal(err)
	}
	w := registrytest.WatchKeys(t, watcher, e.root+"/dubbo", 20*time.Second)
	w.Until(t, "v1", func(m map[string][]byte) bool { return registrytest.HasKey(m, key, "v1") })
	sw.cut()
	if err := watcher.PutKey(ctx, e.root+"/dubbo/x", nil, false); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("PutKey with the network cut = %v, want ErrUnavailable", err)
	}
	if err := writer.PutKey(ctx, key, []byte("v2"), false); err != nil {
		t.Fatal(err)
	}
	sw.restore()
	w.Until(t, "v2 after the outage", func(m map[string][]byte) bool { return registrytest.HasKey(m, key, "v2") })
}

package etcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestStoreConformance(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	registrytest.StoreSuite(t, registrytest.StoreHarness{
		New: func(t testing.TB) registry.Registry { return newRegistry(t, srv) },
		LoseSession: func(t testing.TB, _ registry.Registry) {
			// The Store's ephemeral keys are on the lease (the suite's
			// only one at this point): revoke it through one of them.
			resp, err := raw.Get(testContext(t), etcd.DefaultPrefix+"/_shared/", clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range resp.Kvs {
				if kv.Lease != 0 {
					revokeLease(t, raw, string(kv.Key))
					return
				}
			}
			t.Fatal("no key on a lease")
		},
		Timeout: 20 * time.Second,
	})
}

// TestStoreServerDown: with etcd down a put fails as unavailable, the
// watch says nothing; with etcd back the watch reads the keys again and
// the ephemeral key is written again under the new lease.
func TestStoreServerDown(t *testing.T) {
	dir := t.TempDir()
	srv := startServerAt(t, dir, "127.0.0.1:0")
	addr := hostPort(t, srv.ClientURL())
	owner, obs := newRegistry(t, srv), newRegistry(t, srv)
	defer obs.Close()
	defer owner.Close()
	ctx := testContext(t)
	if err := owner.PutKey(ctx, "/dubbo/org.x.S/consumers/c1", []byte("c"), true); err != nil {
		t.Fatal(err)
	}
	w := registrytest.WatchKeys(t, obs, "/dubbo", 30*time.Second)
	w.Until(t, "the key", func(m map[string][]byte) bool { return registrytest.HasKey(m, "/dubbo/org.x.S/consumers/c1", "c") })

	_ = srv.Close()
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := owner.PutKey(pctx, "/dubbo/mapping/org.x.S", []byte("app"), false); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("PutKey with etcd down = %v, want ErrUnavailable", err)
	}
	startServerAt(t, dir, addr)
	if err := owner.PutKey(ctx, "/dubbo/mapping/org.x.S", []byte("app"), false); err != nil {
		t.Fatalf("PutKey with etcd back: %v", err)
	}
	w.Until(t, "both keys after the restart", func(m map[string][]byte) bool {
		return registrytest.HasKey(m, "/dubbo/org.x.S/consumers/c1", "c") && registrytest.HasKey(m, "/dubbo/mapping/org.x.S", "app")
	})
}

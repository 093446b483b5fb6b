package e2e

import (
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
	"github.com/detourmesh/detour/registry-adapters/zookeeper"
)

const zkHow = "start one with `bash scripts/zookeeper.sh start DIR` and export the DETOUR_ZK_ADDR it prints"

func zkClient(t testing.TB, addr string) registry.Registry {
	t.Helper()
	cfg := zookeeper.Default()
	cfg.Servers = []string{addr}
	cfg.SessionTimeout = 2 * time.Second
	cfg.RequestTimeout = 2 * time.Second
	r, err := zookeeper.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestZooKeeper(t *testing.T) {
	addr := registrytest.RequireEnv(t, "DETOUR_ZK_ADDR", zkHow)
	scenario(t, func(t *testing.T) registry.Registry { return zkClient(t, addr) })
}

// TestZooKeeperRestartWithRegistryDown: the agent restarts with no
// ZooKeeper reachable and answers from its cache.
func TestZooKeeperRestartWithRegistryDown(t *testing.T) {
	addr := registrytest.RequireEnv(t, "DETOUR_ZK_ADDR", zkHow)
	svc := uniqueService(t)
	data := t.TempDir()
	b := newHost(t, "127.0.0.3", zkClient(t, addr), t.TempDir())
	app, port := listen(t, "127.0.0.3")
	defer app.Close()
	if _, err := b.a.Publish(publishReq(svc, port)); err != nil {
		t.Fatal(err)
	}
	a := newHost(t, "127.0.0.2", zkClient(t, addr), data)
	a.answer(svc, "B's instance", addrsAre(hostPort("127.0.0.3", port)))
	a.close()

	t.Log("restart with no ZooKeeper at the address")
	dead := hostPort("127.0.0.1", freePort(t))
	a2 := newHost(t, "127.0.0.2", zkClient(t, dead), data)
	a2.answer(svc, "answer from the cache", addrsAre(hostPort("127.0.0.3", port)))
	if !a2.a.Status().Subscriptions[0].FromCache {
		t.Error("answer not marked as from the cache")
	}
}

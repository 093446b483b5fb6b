package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd starts an embedded etcd server (the same one the agent
// embeds by default) as the registry every host shares.
func startEtcd(t testing.TB, dir string, clientPort, peerPort int) *embedded.Server {
	t.Helper()
	cfg := embedded.Default()
	cfg.DataDir = dir
	cfg.ListenClient = hostPort("127.0.0.1", clientPort)
	cfg.ListenPeer = hostPort("127.0.0.1", peerPort)
	cfg.UnsafeNoFsync = true
	srv, err := embedded.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func etcdClient(t testing.TB, endpoints []string) registry.Registry {
	t.Helper()
	cfg := etcd.Default()
	cfg.Endpoints = endpoints
	cfg.LeaseTTL = 2 * time.Second
	cfg.RequestTimeout = 2 * time.Second
	r, err := etcd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestEtcd(t *testing.T) {
	srv := startEtcd(t, t.TempDir(), freePort(t), freePort(t))
	scenario(t, func(t *testing.T) registry.Registry { return etcdClient(t, srv.Endpoints()) })
}

// TestEtcdRestartWithRegistryDown: an agent restarted while etcd is down
// answers from its cache, keeps its ports, accepts publications, and
// registers them when etcd is back.
func TestEtcdRestartWithRegistryDown(t *testing.T) {
	dir, cport, pport := t.TempDir(), freePort(t), freePort(t)
	srv := startEtcd(t, dir, cport, pport)
	endpoints := srv.Endpoints()
	svc := uniqueService(t)
	remote := registry.Endpoint{Service: svc, Addr: "127.0.0.9:9000"}
	other := etcdClient(t, endpoints)
	if err := other.Register(context.Background(), remote); err != nil {
		t.Fatal(err)
	}

	data := t.TempDir()
	a := newHost(t, "127.0.0.2", etcdClient(t, endpoints), data)
	a.answer(svc, "remote instance", addrsAre("127.0.0.9:9000"))
	app, port := listen(t, "127.0.0.2")
	defer app.Close()
	pub, err := a.a.Publish(publishReq("mine-"+svc, port))
	if err != nil {
		t.Fatal(err)
	}
	a.close()
	other.Close()

	t.Log("etcd down; the agent restarts")
	srv.Close()
	a2 := newHost(t, "127.0.0.2", etcdClient(t, endpoints), data)
	ans := a2.answer(svc, "answer from the cache", addrsAre("127.0.0.9:9000"))
	if st := a2.a.Status(); !st.Subscriptions[0].FromCache {
		t.Errorf("subscription not marked as from the cache: %+v", st.Subscriptions[0])
	}
	again, err := a2.a.Publish(publishReq("mine-"+svc, port))
	if err != nil || again.IngressPort != pub.IngressPort {
		t.Fatalf("publish during the outage = %+v, %v; want ingress %d kept", again, err, pub.IngressPort)
	}
	registrytest.Eventually(t, wait, "registry error in status", func() bool { return !a2.a.Status().Registry.OK })
	if ans.Revision == 0 {
		t.Error("no revision")
	}

	t.Log("etcd back")
	startEtcd(t, dir, cport, pport)
	a2.listed("mine-"+svc, "publication registered once etcd is back", oneAt(hostPort("127.0.0.2", port), "false"))
	registrytest.Eventually(t, wait, "answer confirmed by the registry", func() bool {
		st := a2.a.Status()
		return st.Registry.OK && !st.Subscriptions[0].FromCache
	})
}

package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

func TestRegistryOutage(t *testing.T) {
	e := newEnv(t, nil)
	e.remote("svc")
	e.answer("svc", "known", func(a Answer) bool { return len(a.Endpoints) == 2 })

	e.srv.SetDown(true)
	registryWaitStatus(t, e, func() bool { return !e.a.Status().Registry.OK })
	ans, err := e.a.Resolve(context.Background(), "svc")
	if err != nil || !slices.Equal(addrs(ans.Endpoints), realAddrs) {
		t.Fatalf("Resolve during outage = %+v, %v", ans, err)
	}
	// Publishing during the outage is accepted and kept.
	if _, err := e.a.Publish(PublishRequest{Service: "late", Port: 7001}); err != nil {
		t.Fatal(err)
	}
	registryWaitStatus(t, e, func() bool {
		p := e.a.Status().Publications
		return len(p) == 1 && p[0].RegistryError != ""
	})
	// A service never seen, with the registry down, is unavailable.
	if _, err := e.a.Resolve(context.Background(), "unseen"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Resolve(unseen) during outage = %v, want ErrUnavailable", err)
	}

	e.srv.SetDown(false)
	e.registered("late", "publication restored", func(eps []registry.Endpoint) bool { return len(eps) == 1 })
	registryWaitStatus(t, e, func() bool { return e.a.Status().Registry.OK })
}

func TestSessionExpiryRestores(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.a.Publish(PublishRequest{Service: "svc", Port: 7002}); err != nil {
		t.Fatal(err)
	}
	e.registered("svc", "registered", func(eps []registry.Endpoint) bool { return len(eps) == 1 })
	e.srv.ExpireSession(e.cli)
	e.registered("svc", "registered after session expiry", func(eps []registry.Endpoint) bool { return len(eps) == 1 })
}

// TestRestartWithRegistryDown: an agent started while the registry is
// unreachable answers from its cache and gives services their old ports.
func TestRestartWithRegistryDown(t *testing.T) {
	e := newEnv(t, nil)
	e.remote("svc")
	e.answer("svc", "known", func(a Answer) bool { return len(a.Endpoints) == 2 })
	pub, err := e.a.Publish(PublishRequest{Service: "mine", Port: 7003})
	if err != nil {
		t.Fatal(err)
	}
	egress := e.a.Status().Subscriptions[0].EgressPort
	e.stop()

	// Silent, as a partition is before any timeout fired. The cache
	// answers at once, not after initial_wait: were the agent to wait for
	// the registry first, this resolve would last until its context ended.
	e.srv.SetSilent(true)
	e.cfg.API.InitialWait = time.Hour
	e.start()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ans, err := e.a.Resolve(ctx, "svc")
	if err != nil || !slices.Equal(addrs(ans.Endpoints), realAddrs) {
		t.Fatalf("Resolve after restart with the registry down = %+v, %v", ans, err)
	}
	if ctx.Err() != nil {
		t.Fatal("the cached answer came only when the resolve's context ended")
	}
	sub := e.a.Status().Subscriptions[0]
	if !sub.FromCache || sub.EgressPort != egress {
		t.Errorf("subscription = %+v, want from cache on egress %d", sub, egress)
	}
	again, err := e.a.Publish(PublishRequest{Service: "mine", Port: 7003})
	if err != nil || again.IngressPort != pub.IngressPort {
		t.Errorf("ingress after restart = %d, %v; want %d", again.IngressPort, err, pub.IngressPort)
	}
	e.srv.SetSilent(false)
	e.registered("mine", "publication made once the registry is back", func(eps []registry.Endpoint) bool { return len(eps) == 1 })
	registryWaitStatus(t, e, func() bool { return !e.a.Status().Subscriptions[0].FromCache })
}

func TestCorruptCacheIgnored(t *testing.T) {
	e := newEnv(t, nil)
	e.stop()
	if err := os.WriteFile(filepath.Join(e.cfg.DataDir, "endpoints.json"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.remote("svc")
	e.answer("svc", "answer from the registry", func(a Answer) bool { return len(a.Endpoints) == 2 })
}

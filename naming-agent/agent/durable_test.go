package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestPublicationsOutliveTheAgent: what was published is published again
// by the next agent on the same data dir, with nobody asking; what was
// unpublished is not.
func TestPublicationsOutliveTheAgent(t *testing.T) {
	e := newEnv(t, nil)
	md := map[string]string{"version": "2"}
	if _, err := e.a.Publish(PublishRequest{Service: "kept", Port: 8080, Protocol: "grpc", Metadata: md, Health: HealthSpec{Type: "grpc"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Publish(PublishRequest{Service: "gone", Port: 8081}); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Unpublish("gone", 8081); err != nil {
		t.Fatal(err)
	}
	e.stop() // the registry client goes too: its entries are gone
	e.registered("kept", "withdrawn with the agent's session", none)

	e.start()
	pubs := e.a.Status().Publications
	if len(pubs) != 1 || pubs[0].Service != "kept" || pubs[0].Port != 8080 || pubs[0].Protocol != "grpc" ||
		pubs[0].Metadata["version"] != "2" || pubs[0].Health.Type != "grpc" {
		t.Fatalf("restored publications = %+v", pubs)
	}
	e.registered("kept", "registered again by the restarted agent", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == "127.0.0.1:8080" && eps[0].Metadata["version"] == "2"
	})
}

// TestCorruptPublicationsRefused: a publications file that is not JSON
// stops the agent with the path in the error (starting without them
// would withdraw the host's services); a bad record is skipped.
func TestCorruptPublicationsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "publications.json")
	os.WriteFile(path, []byte("{not json"), 0o644)
	srv := registrytest.NewFakeServer()
	cli := srv.Client(nil)
	defer cli.Close()
	cfg := testConfig(dir)
	if _, err := New(cfg, cli, WithPortProbe(func(string, int) bool { return true })); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("New over a corrupt publications file = %v, want an error naming %s", err, path)
	}
	os.WriteFile(path, []byte(`{"publications":[{"service":"ok","port":80,"protocol":"tcp","health":{"type":"tcp"}},{"service":"bad/name","port":81}]}`), 0o644)
	a, err := New(cfg, cli, WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if pubs := a.Status().Publications; len(pubs) != 1 || pubs[0].Service != "ok" {
		t.Fatalf("publications = %+v", pubs)
	}
}

// resumed is a registry client that took an earlier run's session back.
type resumed struct {
	registry.Registry
	adopted []registry.Endpoint
}

func (r resumed) Adopted() []registry.Endpoint { return r.adopted }

// TestRestartKeepsRegistration: an agent killed and restarted on the
// session it took back keeps its sidecar's ingress registered the whole
// time, while its sidecar (alive, redialling) reconnects; a watcher on
// another client never sees the entry change.
func TestRestartKeepsRegistration(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.a.Publish(PublishRequest{Service: "svc", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	e.startSidecar()
	e.waitSidecar(true)
	ingress := e.registered("svc", "ingress registration", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Metadata[MetaMesh] == "true"
	})

	w, err := e.other.Watch(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var changes [][]registry.Endpoint
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			eps, err := w.Next(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			changes = append(changes, eps)
			mu.Unlock()
		}
	}()

	// The crash: the agent stops, its session (e.cli) lives on.
	e.a.Close()
	e.startOn(resumed{Registry: e.cli, adopted: ingress})
	// The sidecar answers /ready but takes a while to redial.
	until := e.probes.Load() + 10
	registrytest.Eventually(t, wait, "10 probes before the sidecar redials", func() bool { return e.probes.Load() >= until })
	e.startSidecar()
	e.waitSidecar(true)
	e.registered("svc", "still the ingress", func(eps []registry.Endpoint) bool { return len(eps) == 1 && eps[0].Equal(ingress[0]) })
	cancel()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	if len(changes) > 0 {
		t.Fatalf("the registry entry changed during the restart: %v", changes)
	}
}

// TestRestartWithDeadSidecarFallsBack: an adopted ingress registration
// whose sidecar is gone (/ready refused) is switched to the real port at
// once, not after the settle time.
func TestRestartWithDeadSidecarFallsBack(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Sidecar.StreamGrace = wait * 10 })
	if _, err := e.a.Publish(PublishRequest{Service: "svc", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	e.startSidecar()
	e.waitSidecar(true)
	ingress := e.registered("svc", "ingress registration", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Metadata[MetaMesh] == "true"
	})
	e.a.Close()
	e.ready.Store(false) // the sidecar died with it
	e.startOn(resumed{Registry: e.cli, adopted: ingress})
	e.registered("svc", "the real port", one("127.0.0.1:8080", map[string]string{MetaMesh: "false", MetaPort: "8080", MetaProtocol: "tcp"}))
}

// TestRegistryNeverReached: status says the registry is unreachable,
// with the error, until it answers; a service never seen is
// ErrUnavailable, not an empty answer.
func TestRegistryNeverReached(t *testing.T) {
	srv := registrytest.NewFakeServer()
	srv.SetSilent(true)
	cli := srv.Client(nil)
	defer cli.Close()
	cfg := testConfig(t.TempDir())
	cfg.API.InitialWait = 50 * time.Millisecond
	a, err := New(cfg, cli, WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if st := a.Status().Registry; st.OK || st.Error == "" {
		t.Fatalf("registry status before it ever answered = %+v", st)
	}
	registrytest.Eventually(t, wait, "the probe's error in status", func() bool {
		return strings.Contains(a.Status().Registry.Error, "unreachable")
	})
	if ans, err := a.Resolve(context.Background(), "never-seen"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Resolve with the registry never reached = %+v, %v; want ErrUnavailable", ans, err)
	}
	srv.SetSilent(false)
	registrytest.Eventually(t, wait, "registry ok once it answers", func() bool { return a.Status().Registry.OK })
	if _, err := a.Resolve(context.Background(), "never-seen"); err != nil {
		t.Fatalf("Resolve with the registry back = %v", err)
	}
}

// TestUnsubscribe: the subscription goes with its egress port, the
// sidecar's listener and its cache entry; unused empty ones expire.
func TestUnsubscribe(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Ports.UnusedEgressTTL = 200 * time.Millisecond })
	e.other.Register(context.Background(), registry.Endpoint{Service: "real", Addr: "127.0.0.9:80"})
	sc := e.startSidecar()
	e.waitSidecar(true)
	e.answer("real", "mesh answer", func(a Answer) bool { return a.Mesh })
	e.answer("typo", "an empty answer", func(a Answer) bool { return len(a.Endpoints) == 0 })
	if err := e.a.Unsubscribe("typo-never"); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("Unsubscribe(never) = %v", err)
	}
	registrytest.Eventually(t, wait, "the unused empty subscription expired", func() bool {
		for _, s := range e.a.Status().Subscriptions {
			if s.Service == "typo" {
				return false
			}
		}
		return true
	})
	if err := e.a.Unsubscribe("real"); err != nil {
		t.Fatal(err)
	}
	if subs := e.a.Status().Subscriptions; len(subs) != 0 {
		t.Fatalf("subscriptions after unsubscribe = %+v", subs)
	}
	registrytest.Eventually(t, wait, "the egress listener gone from the snapshot", func() bool {
		snap := sc.snapshot()
		return snap != nil && len(snap.Egress) == 0
	})
	if _, ok := e.a.ports.Get(poolEgress, "real"); ok {
		t.Error("egress port kept after unsubscribe")
	}
}

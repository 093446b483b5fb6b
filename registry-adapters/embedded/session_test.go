package embedded_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestCrashRestartTakesLeaseBack: an agent with the server inside is
// killed (its lease is not revoked, the server stops with it) and started
// again on the same data dir with the same session store. The server
// still holds the lease, the registry takes it back with the
// registrations on it, and they stay past the lease's TTL.
func TestCrashRestartTakesLeaseBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "session")
	first := registrytest.NewFileStore(path)
	r1, err := embedded.New(testConfig(dir), embedded.WithLogger(zaptest.NewLogger(t)), embedded.WithSessionStore(first))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r1.Close() })
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"detour.port": "8080"}}
	if err := r1.Register(testContext(t), ep); err != nil {
		t.Fatal(err)
	}
	// The kill: the client goes without a revoke, then the server.
	_ = r1.Client().Close()
	first.Freeze()
	_ = r1.Server().Close()

	cfg := testConfig(dir)
	r2, err := embedded.New(cfg, embedded.WithLogger(zaptest.NewLogger(t)), embedded.WithSessionStore(registrytest.NewFileStore(path)))
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { _ = r2.Close() })
	want := []registry.Endpoint{mustNormalize(t, ep)}
	if got := r2.Adopted(); !registry.EqualSets(got, want) {
		t.Errorf("Adopted after the restart = %s, want %s", registrytest.Format(got), registrytest.Format(want))
	}
	w, err := r2.Watch(testContext(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := w.Next(testContext(t)); err != nil || !registry.EqualSets(got, want) {
		t.Fatalf("first Next after the restart = %s, %v; want %s", registrytest.Format(got), err, registrytest.Format(want))
	}
	// Nothing changes for three TTLs: the lease taken back is kept alive.
	ctx, cancel := context.WithTimeout(testContext(t), 3*cfg.Registry.LeaseTTL)
	defer cancel()
	if got, err := w.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next after the restart = %s, %v; want no change", registrytest.Format(got), err)
	}
	if err := r2.Deregister(testContext(t), svc, ep.Addr); err != nil {
		t.Errorf("Deregister of the adopted registration: %v", err)
	}
}

package etcd_test

import (
	"errors"
	"testing"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestWatchFromCompactedRevision: a watch from a revision etcd has
// compacted away ends with errCompacted, on which the watcher lists again
// instead of reporting an outage.
func TestWatchFromCompactedRevision(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	r := newRegistry(t, srv)
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	mustRegister(t, r, ep)
	first, err := raw.Get(testContext(t), "any")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ep.Weight = uint32(i + 1)
		mustRegister(t, r, ep)
	}
	now, err := raw.Get(testContext(t), "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Compact(testContext(t), now.Header.Revision); err != nil {
		t.Fatal(err)
	}

	w, err := r.Watch(testContext(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := etcd.FollowFrom(w, first.Header.Revision); !errors.Is(err, etcd.ErrCompacted) {
		t.Fatalf("watch from compacted revision %d ended with %v, want ErrCompacted", first.Header.Revision, err)
	}
	// The watcher itself listed after the compaction and follows on.
	registrytest.NextUntil(t, registrytest.Harness{}, w, normalized(t, ep))
	ep.Weight = 9
	mustRegister(t, r, ep)
	registrytest.NextUntil(t, registrytest.Harness{}, w, normalized(t, ep))
}

// TestWatchWithEtcdDown: Watch does not wait for etcd; with etcd down
// the first Next reports ErrUnavailable, and the watcher serves the set
// once etcd is reachable.
func TestWatchWithEtcdDown(t *testing.T) {
	srv := startServer(t)
	addr := hostPort(t, srv.ClientURL())
	dir := t.TempDir()
	_ = srv.Close()
	r := newRegistry(t, srv)
	defer r.Close()
	svc := registrytest.Service(t)
	w, err := r.Watch(testContext(t), svc)
	if err != nil {
		t.Fatalf("Watch with etcd down: %v", err)
	}
	defer w.Close()
	if _, err := w.Next(testContext(t)); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("first Next with etcd down = %v, want ErrUnavailable", err)
	}
	if _, err := r.List(testContext(t), svc); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("List with etcd down = %v, want ErrUnavailable", err)
	}
	startServerAt(t, dir, addr)
	got, err := w.Next(testContext(t))
	if err != nil || len(got) != 0 {
		t.Fatalf("Next once etcd is up = %v, %v; want the empty set", got, err)
	}
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	mustRegister(t, r, ep)
	registrytest.NextUntil(t, registrytest.Harness{}, w, normalized(t, ep))
}

package etcd_test

import (
	"testing"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestMalformedEntries: every kind of bad entry is skipped by List and by
// watchers, reported once per key and value however often it is read,
// and reported again when it changes or comes back after a deletion.
func TestMalformedEntries(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	counter := registrytest.NewMalformedCounter()
	a := newRegistry(t, srv)
	b := newRegistry(t, srv, etcd.WithMalformedFunc(counter.Func))
	svc := registrytest.Service(t)
	base := etcd.DefaultPrefix + "/" + svc + "/"
	good := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	mustRegister(t, a, good)
	want := normalized(t, good)

	w1, err := b.Watch(testContext(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	h := registrytest.Harness{}
	registrytest.NextUntil(t, h, w1, want)

	bad := map[string]string{
		base + "127.0.0.3:1":        `garbage`,
		base + "127.0.0.3:2":        `{"Metadata":{}}`,
		base + "127.0.0.3:3":        `{"Addr":"127.0.0.4:3"}`,
		base + "nested/127.0.0.3:4": `{"Addr":"127.0.0.3:4"}`,
		base + "0.0.0.0:5":          `{"Addr":"0.0.0.0:5"}`,
	}
	for k, v := range bad {
		if _, err := raw.Put(testContext(t), k, v); err != nil {
			t.Fatal(err)
		}
	}
	// The watch goes on past them.
	good2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001"}
	mustRegister(t, a, good2)
	want = normalized(t, good, good2)
	registrytest.NextUntil(t, h, w1, want)
	registrytest.Eventually(t, h.Timeout+10e9, "all bad entries reported", func() bool { return counter.Count(svc) >= len(bad) })

	// Read again and again, by List and a second watcher's listing.
	for range 3 {
		registrytest.EventuallyList(t, h, b, svc, want)
	}
	w2, err := b.Watch(testContext(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	registrytest.NextUntil(t, h, w2, want)
	if n := counter.Count(svc); n != len(bad) {
		t.Fatalf("reported %d times, want %d: %v", n, len(bad), counter.Keys(svc))
	}

	// A changed value is a new bad entry; so is one written again after
	// its deletion.
	if _, err := raw.Put(testContext(t), base+"127.0.0.3:1", `garbage, changed`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Delete(testContext(t), base+"127.0.0.3:2"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(testContext(t), base+"127.0.0.3:2", bad[base+"127.0.0.3:2"]); err != nil {
		t.Fatal(err)
	}
	registrytest.Eventually(t, 10e9, "changed entries reported", func() bool { return counter.Count(svc) >= len(bad)+2 })
	registrytest.EventuallyList(t, h, b, svc, want)
	if n := counter.Count(svc); n != len(bad)+2 {
		t.Errorf("reported %d times, want %d: %v", n, len(bad)+2, counter.Keys(svc))
	}
}

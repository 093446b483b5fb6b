package etcd_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestConformance(t *testing.T) {
	registrytest.Run(t, harness(t, startServer(t)))
}

func BenchmarkPropagation(b *testing.B) {
	registrytest.BenchmarkPropagation(b, harness(b, startServer(b)))
}

// harness returns the conformance harness for the etcd adapter on srv.
func harness(t testing.TB, srv *embedded.Server) registrytest.Harness {
	raw := rawClient(t, srv)
	prefix := etcd.DefaultPrefix
	return registrytest.Harness{
		New: func(t testing.TB, onMalformed registry.MalformedFunc) registry.Registry {
			return &tracked{Registry: newRegistry(t, srv, etcd.WithMalformedFunc(onMalformed))}
		},
		WriteMalformed: func(t testing.TB, service string) string {
			key := prefix + "/" + service + "/127.0.0.9:1"
			if _, err := raw.Put(testContext(t), key, "{not json"); err != nil {
				t.Fatalf("put malformed entry: %v", err)
			}
			return key
		},
		LoseSession: func(t testing.TB, r registry.Registry) {
			revokeLease(t, raw, r.(*tracked).lastKey())
		},
		NewWithStore: func(t testing.TB, store registry.SessionStore) registry.Registry {
			return &tracked{Registry: newRegistry(t, srv, etcd.WithSessionStore(store))}
		},
		Crash:      func(t testing.TB, r registry.Registry) { crash(t, r.(*tracked).Registry) },
		SessionTTL: testLeaseTTL,
	}
}

// crash drops r as a killed process drops it: its client closes (the
// keep-alives stop, the connection closes) and the lease is not revoked.
// The Registry's goroutines only fail from then on, until its Close.
func crash(t testing.TB, r *etcd.Registry) {
	t.Helper()
	if err := r.Client().Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("crash: close the client: %v", err)
	}
}

// tracked remembers the last key its Registry registered, so LoseSession
// can find the lease behind it as an outside client would.
type tracked struct {
	*etcd.Registry
	mu  sync.Mutex
	key string
}

func (r *tracked) Register(ctx context.Context, ep registry.Endpoint) error {
	err := r.Registry.Register(ctx, ep)
	if err == nil {
		r.mu.Lock()
		r.key = etcd.DefaultPrefix + "/" + ep.Service + "/" + ep.Addr
		r.mu.Unlock()
	}
	return err
}

func (r *tracked) lastKey() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.key
}

// revokeLease revokes the lease key is bound to, with a raw client, as an
// operator or a lease expiry would.
func revokeLease(t testing.TB, raw *clientv3.Client, key string) clientv3.LeaseID {
	t.Helper()
	if key == "" {
		t.Fatal("revokeLease: the registry registered nothing")
	}
	resp, err := raw.Get(testContext(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("%s has no lease: %v", key, resp.Kvs)
	}
	id := clientv3.LeaseID(resp.Kvs[0].Lease)
	if _, err := raw.Revoke(testContext(t), id); err != nil {
		t.Fatalf("revoke lease %x: %v", id, err)
	}
	return id
}

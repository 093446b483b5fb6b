package embedded_test

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestConformance(t *testing.T) {
	registrytest.Run(t, harness())
}

func BenchmarkPropagation(b *testing.B) {
	registrytest.BenchmarkPropagation(b, harness())
}

// testConfig is an embedded config in dir on free loopback ports.
func testConfig(dir string) embedded.Config {
	return embedded.Config{
		DataDir:      dir,
		ListenClient: "127.0.0.1:0",
		ListenPeer:   "127.0.0.1:0",
		Registry:     etcd.Config{LeaseTTL: 2 * time.Second, RequestTimeout: 2 * time.Second},
	}
}

// harness runs the suite the way the embedded registry is deployed: in
// each test the first client is an embedded Registry (an agent with the
// server inside), the others are etcd registries of other agents pointed
// at its ClientURL. The suite closes clients and expects the server to go
// on serving the others, so closing the embedded client there closes its
// registry (revoking its lease, closing its client) and leaves the server
// to the end of the test; Close stopping the server is tested on its own.
func harness() registrytest.Harness {
	var mu sync.Mutex
	hosts := map[testing.TB]*embedded.Registry{}
	host := func(t testing.TB) *embedded.Registry {
		mu.Lock()
		defer mu.Unlock()
		return hosts[t]
	}
	return registrytest.Harness{
		New: func(t testing.TB, onMalformed registry.MalformedFunc) registry.Registry {
			log := zaptest.NewLogger(t)
			if h := host(t); h != nil {
				cfg := testConfig("").Registry
				cfg.Endpoints = h.Endpoints()
				r, err := etcd.New(cfg, etcd.WithLogger(log), etcd.WithMalformedFunc(onMalformed))
				if err != nil {
					t.Fatalf("etcd.New: %v", err)
				}
				t.Cleanup(func() { _ = r.Close() })
				return &tracked{Registry: r}
			}
			h, err := embedded.New(testConfig(t.TempDir()),
				embedded.WithLogger(log), embedded.WithMalformedFunc(onMalformed))
			if err != nil {
				t.Fatalf("embedded.New: %v", err)
			}
			mu.Lock()
			hosts[t] = h
			mu.Unlock()
			t.Cleanup(func() {
				_ = h.Close()
				mu.Lock()
				delete(hosts, t)
				mu.Unlock()
			})
			return &tracked{Registry: h, close: h.Registry.Close}
		},
		WriteMalformed: func(t testing.TB, service string) string {
			key := etcd.DefaultPrefix + "/" + service + "/127.0.0.9:1"
			if _, err := rawClient(t, host(t)).Put(testContext(t), key, "{not json"); err != nil {
				t.Fatalf("put malformed entry: %v", err)
			}
			return key
		},
		LoseSession: func(t testing.TB, r registry.Registry) {
			raw := rawClient(t, host(t))
			key := r.(*tracked).lastKey()
			resp, err := raw.Get(testContext(t), key)
			if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
				t.Fatalf("get %s: %v %v", key, resp, err)
			}
			if _, err := raw.Revoke(testContext(t), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
				t.Fatalf("revoke: %v", err)
			}
		},
	}
}

// tracked remembers the last key its Registry registered, so LoseSession
// can find the lease behind it as an outside client would; close, if
// set, replaces Close.
type tracked struct {
	registry.Registry
	close func() error

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

func (r *tracked) Close() error {
	if r.close != nil {
		return r.close()
	}
	return r.Registry.Close()
}

func (r *tracked) lastKey() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.key
}

func rawClient(t testing.TB, h interface{ Endpoints() []string }) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: h.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

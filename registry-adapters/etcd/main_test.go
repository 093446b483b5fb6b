package etcd_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// TestMain checks that no goroutine outlives the tests. A closed etcd
// client and a closed embedded server leave none behind, so nothing is
// ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLeaseTTL is short so that a lost lease is noticed within a second
// (the client sends a keep-alive every TTL/3); 2s is etcd's minimum with
// its default election timeout.
const testLeaseTTL = 2 * time.Second

// startServer starts an etcd server in a temporary directory on free
// loopback ports.
func startServer(t testing.TB) *embedded.Server {
	t.Helper()
	return startServerAt(t, t.TempDir(), "127.0.0.1:0")
}

func startServerAt(t testing.TB, dir, client string) *embedded.Server {
	t.Helper()
	srv, err := embedded.StartServer(embedded.Config{
		DataDir:      dir,
		ListenClient: client,
		ListenPeer:   "127.0.0.1:0",
	}, embedded.WithLogger(zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))))
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// testConfig is the adapter's config for tests on srv.
func testConfig(srv *embedded.Server) etcd.Config {
	c := etcd.Default()
	c.Endpoints = srv.Endpoints()
	c.LeaseTTL = testLeaseTTL
	c.RequestTimeout = 2 * time.Second
	return c
}

// newRegistry returns a Registry on srv, closed at the end of the test.
func newRegistry(t testing.TB, srv *embedded.Server, opts ...etcd.Option) *etcd.Registry {
	t.Helper()
	opts = append([]etcd.Option{etcd.WithLogger(zaptest.NewLogger(t))}, opts...)
	r, err := etcd.New(testConfig(srv), opts...)
	if err != nil {
		t.Fatalf("etcd.New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// rawClient returns a plain etcd client of srv, closed at the end of the
// test.
func rawClient(t testing.TB, srv *embedded.Server) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
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

func mustRegister(t testing.TB, r registry.Registry, ep registry.Endpoint) {
	t.Helper()
	if err := r.Register(testContext(t), ep); err != nil {
		t.Fatalf("Register(%s): %v", ep, err)
	}
}

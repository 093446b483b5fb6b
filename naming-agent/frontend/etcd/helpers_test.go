package etcd

import (
	"context"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
	"github.com/detourmesh/detour/registry-adapters/embedded"
)

// startEtcd runs a real etcd server in the test's process.
func startEtcd(t testing.TB) string {
	t.Helper()
	cfg := embedded.Default()
	cfg.DataDir = t.TempDir()
	cfg.ListenClient, cfg.ListenPeer = "127.0.0.1:0", "127.0.0.1:0"
	cfg.UnsafeNoFsync = true
	srv, err := embedded.StartServer(cfg)
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.ClientURL()
}

func client(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fixture is a front end over its own real etcd, with a fake core.
type fixture struct {
	core     *frontendtest.FakeCore
	srv      *Server
	addr     string // the front end's
	upstream string // the real etcd's URL
	app      *clientv3.Client
}

func newFixture(t testing.TB, cfgs ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{core: frontendtest.NewFakeCore(), upstream: startEtcd(t)}
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	for _, c := range cfgs {
		c(&cfg)
	}
	srv, err := New(cfg, f.core, client(t, f.upstream), WithHost("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Close)
	f.srv, f.addr = srv, l.Addr().String()
	f.app = client(t, "http://"+f.addr)
	return f
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// poll waits for cond, failing the test after 10 s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

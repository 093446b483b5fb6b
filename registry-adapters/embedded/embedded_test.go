package embedded_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestLifecycle: New serves clients at ClientURL as a plain etcd; Close
// revokes the registrations, stops the server and frees its port, once;
// calls after Close return ErrClosed.
func TestLifecycle(t *testing.T) {
	start := time.Now()
	r, err := embedded.New(testConfig(t.TempDir()), embedded.WithLogger(zaptest.NewLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ready in %v at %s", time.Since(start), r.ClientURL())
	if !strings.HasPrefix(r.ClientURL(), "http://127.0.0.1:") || strings.HasSuffix(r.ClientURL(), ":0") {
		t.Errorf("ClientURL = %q, want the port actually listened on", r.ClientURL())
	}
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	if err := r.Register(testContext(t), ep); err != nil {
		t.Fatal(err)
	}
	// Another agent points a plain etcd registry at it.
	cfg := testConfig("").Registry
	cfg.Endpoints = r.Endpoints()
	other, err := etcd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	registrytest.EventuallyList(t, registrytest.Harness{}, other, svc, []registry.Endpoint{mustNormalize(t, ep)})

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := r.Register(testContext(t), ep); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Register after Close = %v, want ErrClosed", err)
	}
	host := strings.TrimPrefix(r.ClientURL(), "http://")
	l, err := net.Listen("tcp", host)
	if err != nil {
		t.Fatalf("client port still taken after Close: %v", err)
	}
	_ = l.Close()
}

// TestRestartKeepsData: a new server on the same data dir has what the
// old one held; registrations of a closed registry are gone with its
// lease.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	r, err := embedded.New(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, r)
	if _, err := raw.Put(testContext(t), "kept", "v"); err != nil {
		t.Fatal(err)
	}
	svc := registrytest.Service(t)
	if err := r.Register(testContext(t), registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}); err != nil {
		t.Fatal(err)
	}
	_ = raw.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2, err := embedded.New(testConfig(dir))
	if err != nil {
		t.Fatalf("restart on the same data dir: %v", err)
	}
	defer r2.Close()
	resp, err := rawClient(t, r2).Get(testContext(t), "kept")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart get = %v, %v; want the value", resp, err)
	}
	if got, err := r2.List(testContext(t), svc); err != nil || len(got) != 0 {
		t.Errorf("List after restart = %v, %v; want empty (lease revoked at Close)", got, err)
	}
}

// TestPortInUse: New fails, and cleans up, when its client port is taken.
func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig(t.TempDir())
	cfg.ListenClient = l.Addr().String()
	if r, err := embedded.New(cfg); err == nil {
		_ = r.Close()
		t.Fatal("New on a taken port succeeded")
	}
}

// TestMalformedFuncReachesRegistry: WithMalformedFunc is the registry's.
func TestMalformedFuncReachesRegistry(t *testing.T) {
	counter := registrytest.NewMalformedCounter()
	r, err := embedded.New(testConfig(t.TempDir()), embedded.WithMalformedFunc(counter.Func))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	svc := registrytest.Service(t)
	if _, err := rawClient(t, r).Put(testContext(t), etcd.DefaultPrefix+"/"+svc+"/127.0.0.2:1", "bad"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.List(testContext(t), svc); err != nil || len(got) != 0 {
		t.Fatalf("List = %v, %v; want empty", got, err)
	}
	if n := counter.Count(svc); n != 1 {
		t.Errorf("reported %d times, want 1", n)
	}
}

func mustNormalize(t testing.TB, ep registry.Endpoint) registry.Endpoint {
	t.Helper()
	n, err := ep.Normalized()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

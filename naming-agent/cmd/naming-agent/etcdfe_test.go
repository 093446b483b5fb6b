package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.uber.org/zap"
)

// TestEtcdFrontend runs the binary's wiring with the etcd front end over
// the embedded registry: etcd's endpoints manager registers through it
// on its lease, the registry holds the service
// (without a sidecar, at its own address; read back through the front
// end, a pass-through read of the registry's own keys), and the lease's revoke withdraws it.
func TestEtcdFrontend(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgPath, []byte("registry:\n  embedded:\n    client_listen: 127.0.0.1:0\n    peer_listen: 127.0.0.1:0\n"), 0o644)
	args := []string{"--config", cfgPath, "--data-dir", filepath.Join(dir, "data"), "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
		"--log-level", "warn", "--etcd-listen", addr}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, args, io.Discard, &stderr, registries(), func(string, string) { close(ready) })
	}()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("agent exited %d: %s", code, stderr.String())
	}
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	}()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
	defer tcancel()
	lease, err := c.Grant(tctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	app, err := net.Listen("tcp", "127.0.0.1:0") // the health check dials it
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	appAddr := app.Addr().String()
	em, _ := endpoints.NewManager(c, "greeter")
	if err := em.AddEndpoint(tctx, "greeter/"+appAddr, endpoints.Endpoint{Addr: appAddr}, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	registered := func() []string {
		g, err := c.Get(tctx, "detour/services/greeter/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, kv := range g.Kvs {
			out = append(out, string(kv.Key))
		}
		return out
	}
	poll := func(what string, cond func([]string) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			got := registered()
			if cond(got) {
				return
			}
			select {
			case <-deadline:
				t.Fatalf("%s: registry holds %q\n%s", what, got, stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// No sidecar runs: the agent registers the app's own address.
	poll("registered", func(keys []string) bool { return len(keys) == 1 && keys[0] == "detour/services/greeter/"+appAddr })
	if _, err := c.Revoke(tctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	poll("withdrawn at the lease's revoke", func(keys []string) bool { return len(keys) == 0 })
}

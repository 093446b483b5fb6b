package etcd

import (
	"context"
	"net"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

// TestUpstreamAuth: over an etcd with auth on, the front end logs in as
// the agent (WithAgentAuth) and an app's calls run as the agent's user;
// an app's Authenticate is the upstream's check of its own password.
func TestUpstreamAuth(t *testing.T) {
	up := startEtcd(t)
	// Hang guards only: bcrypt logins under -race on a loaded machine took
	// over ctxT's 20 s and the 5 s dial timeout (a load-only failure).
	ctx, cancel := context.WithTimeout(context.Background(), 4*guardTimeout)
	defer cancel()
	admin := client(t, up)
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "app", "apppw"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	agent, err := clientv3.New(clientv3.Config{Endpoints: []string{up}, Username: "root", Password: "rootpw", DialTimeout: guardTimeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	cfg := Default()
	srv, err := New(cfg, frontendtest.NewFakeCore(), agent, WithAgentAuth())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Close)
	app := client(t, "http://"+l.Addr().String())
	if _, err := app.Put(ctx, "/config/x", "1"); err != nil {
		t.Fatalf("an app's put as the agent's user: %v", err)
	}
	if _, err := clientv3.New(clientv3.Config{Endpoints: []string{l.Addr().String()}, Username: "app", Password: "wrong", DialTimeout: guardTimeout, Logger: zap.NewNop()}); err == nil {
		t.Error("a wrong password was accepted")
	}
	good, err := clientv3.New(clientv3.Config{Endpoints: []string{l.Addr().String()}, Username: "app", Password: "apppw", DialTimeout: guardTimeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("the app's own password: %v", err)
	}
	good.Close()
}

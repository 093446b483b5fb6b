package nacos

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// TestAuth: against a Nacos with authentication on (the test server's
// WithAuth), the adapter with the right user registers and lists; with
// a wrong password or none, Nacos refuses every naming request and
// nothing is registered.
func TestAuth(t *testing.T) {
	srv, err := nacostestserver.Start(nacostestserver.WithAuth("detour", "nacos-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mk := func(user, pass string) *Registry {
		c := Default()
		c.Servers = []string{srv.Addr()}
		c.Username, c.Password = user, pass
		c.RequestTimeout = time.Second
		r, err := New(c, WithLogger(zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, bad := range []struct{ name, user, pass string }{{"wrong password", "detour", "nope"}, {"no user", "", ""}} {
		r := mk(bad.user, bad.pass)
		if err := r.Register(ctx, registry.Endpoint{Service: "intruder", Addr: "10.0.0.9:1"}); err == nil {
			t.Errorf("%s: register succeeded", bad.name)
		}
		if _, err := r.List(ctx, "intruder"); err == nil {
			t.Errorf("%s: list succeeded", bad.name)
		}
	}

	r := mk("detour", "nacos-pw")
	ep := registry.Endpoint{Service: "greeter", Addr: "10.0.0.1:8080"}
	if err := r.Register(ctx, ep); err != nil {
		t.Fatalf("register with the user: %v", err)
	}
	eps, err := r.List(ctx, "greeter")
	if err != nil || len(eps) != 1 || eps[0].Addr != ep.Addr {
		t.Fatalf("list: %v, %v", eps, err)
	}
	if eps, err := r.List(ctx, "intruder"); err != nil || len(eps) != 0 {
		t.Errorf("intruder registered: %v, %v", eps, err)
	}
}

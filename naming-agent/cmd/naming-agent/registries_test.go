package main

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// The nacos:// URL reaches a server, with namespace and group from its
// query: a registration made through the wiring is seen by a second client
// built the same way, and not by one in another group.
func TestNacosWiring(t *testing.T) {
	srv, err := nacostestserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	build := func(group string) registry.Registry {
		cfg := config.Default()
		cfg.Registry.URL = "nacos://" + srv.Addr() + "?namespace=ns1&group=" + group
		r, err := registries()["nacos"](cfg, zaptest.NewLogger(t), nil, nil)
		if err != nil {
			t.Fatalf("nacos wiring: %v", err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b, other := build("g1"), build("g1"), build("g2")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ep := registry.Endpoint{Service: "greeter", Addr: "127.0.0.2:15001"}
	if err := a.Register(ctx, ep); err != nil {
		t.Fatalf("Register: %v", err)
	}
	for {
		got, err := b.List(ctx, "greeter")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(got) == 1 && got[0].Addr == ep.Addr {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("registration not seen through the wiring: %v", got)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if got, err := other.List(ctx, "greeter"); err != nil || len(got) != 0 {
		t.Errorf("another group sees %v, %v; want nothing", got, err)
	}
}

package shim_test

import (
	"context"
	"net"
	"testing"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/registry-adapters/registry"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func published(e *env, svc string) (agent.Publication, bool) {
	for _, p := range e.a.Status().Publications {
		if p.Service == svc {
			return p, true
		}
	}
	return agent.Publication{}, false
}

func listed(t *testing.T, e *env, svc, what string, cond func([]registry.Endpoint) bool) {
	t.Helper()
	eventually(t, what, func() bool {
		eps, err := e.other.List(context.Background(), svc)
		return err == nil && cond(eps)
	})
}

// TestPublishHeld: a publication is registered, published again by
// itself after an agent restart, withdrawn by Unpublish, and by Close.
func TestPublishHeld(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc, other := uniqueService(t), uniqueService(t)+"-2"
	app, err := net.Listen("tcp", net.JoinHostPort(e.ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	port := app.Addr().(*net.TCPAddr).Port
	real := app.Addr().String()
	ctx := context.Background()

	pub, err := c.Publish(ctx, shim.PublishRequest{Service: svc, Port: port, Protocol: "http", Metadata: map[string]string{"version": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if pub.Service != svc || pub.Port != port || pub.Protocol != "http" || pub.Metadata["version"] != "1" || pub.IngressPort == 0 {
		t.Errorf("Publish = %+v", pub)
	}
	if _, err := c.Publish(ctx, shim.PublishRequest{Service: other, Port: port}); err != nil {
		t.Fatal(err)
	}
	isReal := func(eps []registry.Endpoint) bool { return len(eps) == 1 && eps[0].Addr == real }
	listed(t, e, svc, "registered", isReal)

	t.Log("the agent restarts: it restores the publications, and the client publishes them again")
	e.stopAgent()
	listed(t, e, svc, "deregistered with the agent", func(eps []registry.Endpoint) bool { return len(eps) == 0 })
	e.startAgent()
	eventually(t, "published again", func() bool {
		_, ok1 := published(e, svc)
		_, ok2 := published(e, other)
		return ok1 && ok2
	})
	if p, _ := published(e, svc); p.Protocol != "http" || p.Metadata["version"] != "1" {
		t.Errorf("published again as %+v", p)
	}
	listed(t, e, svc, "registered again", isReal)

	t.Log("unpublish: withdrawn, and not published again after another restart")
	// The agent restored the publications before the client's connection
	// came back: Unpublish waits for it.
	if err := c.Unpublish(ctx, svc, port); err != nil {
		t.Fatal(err)
	}
	if _, ok := published(e, svc); ok {
		t.Error("still published after Unpublish")
	}
	e.stopAgent()
	e.startAgent()
	eventually(t, "the other published again", func() bool { _, ok := published(e, other); return ok })
	if _, ok := published(e, svc); ok {
		t.Error("an unpublished service was published again")
	}

	t.Log("Close unpublishes what it holds")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := published(e, other); ok {
		t.Error("still published after Close")
	}
}

package dataplane

import (
	"context"
	"net"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/dubbo"
)

// TestDubboSplitAndLimit: an egress sends every call where the split
// says (per call), and an ingress over its inbound limit answers
// SERVER_THREADPOOL_EXHAUSTED, counted.
func TestDubboSplitAndLimit(t *testing.T) {
	const D = sidecarpb.Protocol_PROTOCOL_DUBBO
	b := startL7Remote(t, "127.0.0.3", "greeter", D, dubboApp(t, "b", false, "127.0.0.1", "127.0.0.3"), nil)
	c := startL7Remote(t, "127.0.0.4", "greeter", D, dubboApp(t, "c", false, "127.0.0.1", "127.0.0.4"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("greeter", D, versioned(b.endpoint(), "1"), versioned(c.endpoint(), "2"))
	cl.Routes = &sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{{Name: "v1", Labels: map[string]string{"version": "1"}}, {Name: "v2", Labels: map[string]string{"version": "2"}}},
		Split:   []*sidecarpb.WeightedSubset{{Subset: "v2", Weight: 100}, {Subset: "v1", Weight: 0}},
	}
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "greeter", b, c)
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := dubbo.NewReader(conn, 4<<10, dubbo.DefaultMaxBody)
	for id := range 20 {
		if h, body := dubboCall(t, conn, rd, uint64(id)); h.Status != dubbo.StatusOK || body != "c" {
			t.Fatalf("call %d: status %d from %q, want v2 (c)", id, h.Status, body)
		}
	}

	// C's ingress: 2 calls, then a rate too slow to refill.
	snap := &sidecarpb.Snapshot{Version: 2, HostIp: "127.0.0.4", HealthListen: hp("127.0.0.4", c.health),
		Ingress: []*sidecarpb.IngressListener{{Service: "greeter", Listen: hp("127.0.0.4", c.ingress), Target: hp("127.0.0.1", c.port),
			Protocol: D, Limit: &sidecarpb.InboundLimit{Rps: 0.01, Burst: 2}}}}
	if err := c.dp.Apply(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	direct, err := net.Dial("tcp", hp("127.0.0.4", c.ingress))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	drd := dubbo.NewReader(direct, 4<<10, dubbo.DefaultMaxBody)
	exhausted := 0
	for id := range 5 {
		h, _ := dubboCall(t, direct, drd, uint64(id))
		if h.Status == dubbo.StatusThreadpoolExhausted {
			exhausted++
		}
	}
	if exhausted != 3 {
		t.Fatalf("%d of 5 refused, want 3", exhausted)
	}
	if s := c.dp.Stats().Listeners[0].Limit; s == nil || s.RateLimited != 3 || s.InFlight != 0 {
		t.Fatalf("limit stats %+v", s)
	}
}

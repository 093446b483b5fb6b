package e2e

import (
	"net"
	"testing"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// scenario runs the agent's behaviours over a real registry: host B
// (127.0.0.3) publishes an app, host A (127.0.0.2) subscribes.
func scenario(t *testing.T, newClient func(t *testing.T) registry.Registry) {
	svc := uniqueService(t)
	a := newHost(t, "127.0.0.2", newClient(t), t.TempDir())
	b := newHost(t, "127.0.0.3", newClient(t), t.TempDir())
	app, port := listen(t, "127.0.0.3")
	defer app.Close()
	real := hostPort("127.0.0.3", port)

	t.Log("publish with no sidecars: the app's own port, both ways")
	pub, err := b.a.Publish(publishReq(svc, port))
	if err != nil {
		t.Fatal(err)
	}
	ingress := hostPort("127.0.0.3", pub.IngressPort)
	b.listed(svc, "real registration", oneAt(real, "false"))
	a.answer(svc, "real answer", addrsAre(real))

	t.Log("B's sidecar up: B registers its ingress; A, without a sidecar, still dials the app")
	b.startSidecar()
	eps := b.listed(svc, "ingress registration", oneAt(ingress, "true"))
	if md := eps[0].Metadata; md["detour.port"] != itoa(port) || md["detour.protocol"] != "tcp" || md["detour.health_port"] != "7703" {
		t.Errorf("metadata = %v", md)
	}
	a.answer(svc, "real answer from metadata", func(ans agentAnswer) bool { return addrsAre(real)(ans) && len(eps) == 1 })

	t.Log("A's sidecar up: A answers its egress, real endpoints as fallback")
	a.startSidecar()
	ans := a.answer(svc, "mesh answer", func(ans agentAnswer) bool { return ans.Mesh })
	if len(ans.Fallback) != 1 || ans.Fallback[0].Addr != real || *ans.Governance.Retries != 0 {
		t.Errorf("mesh answer = %+v", ans)
	}
	c := a.sidecar.snapshot().Clusters
	if len(c) != 1 || c[0].Endpoints[0].Addr != ingress || c[0].Endpoints[0].AppAddr != real || c[0].Endpoints[0].HealthPort != 7703 {
		t.Errorf("A's cluster = %v", c)
	}

	t.Log("mesh flag off on B: B registers the app's port, live")
	if err := b.a.SetMesh(svc, false); err != nil {
		t.Fatal(err)
	}
	b.listed(svc, "real registration with the flag off", oneAt(real, "false"))
	if err := b.a.SetMesh(svc, true); err != nil {
		t.Fatal(err)
	}
	b.listed(svc, "ingress registration with the flag on", oneAt(ingress, "true"))

	t.Log("A's sidecar killed: A answers the real endpoint")
	a.killSidecar()
	a.answer(svc, "fallback answer", func(ans agentAnswer) bool { return !ans.Mesh && addrsAre(real)(ans) })

	t.Log("B's sidecar killed: B registers the app's port again")
	b.killSidecar()
	b.listed(svc, "real registration after B's fallback", oneAt(real, "false"))

	t.Log("B's app dies: its instance leaves the registry; it returns with the app")
	app.Close()
	b.listed(svc, "withdrawn", func(eps []registry.Endpoint) bool { return len(eps) == 0 })
	a.answer(svc, "empty answer", addrsAre())
	app2, err := net.Listen("tcp", real)
	if err != nil {
		t.Skipf("could not rebind %s: %v", real, err)
	}
	defer app2.Close()
	b.listed(svc, "restored", oneAt(real, "false"))
	a.answer(svc, "answer restored", addrsAre(real))

	t.Log("unpublish")
	if err := b.a.Unpublish(svc, port); err != nil {
		t.Fatal(err)
	}
	b.listed(svc, "gone", func(eps []registry.Endpoint) bool { return len(eps) == 0 })
}

package agent

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

func TestMeshFlagLive(t *testing.T) {
	e := newEnv(t, nil)
	e.remote("svc")
	pub, err := e.a.Publish(PublishRequest{Service: "svc", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	ingress := "127.0.0.1:" + strconv.Itoa(pub.IngressPort)
	e.startSidecar()
	e.answer("svc", "mesh answer", func(a Answer) bool { return a.Mesh })
	hasAddr := func(addr string) func([]registry.Endpoint) bool {
		return func(eps []registry.Endpoint) bool {
			for _, ep := range eps {
				if ep.Addr == addr {
					return true
				}
			}
			return false
		}
	}
	e.registered("svc", "ingress registration", hasAddr(ingress))

	if err := e.a.SetMesh("svc", false); err != nil {
		t.Fatal(err)
	}
	e.answer("svc", "real answer with the flag off", func(a Answer) bool { return !a.Mesh && len(a.Endpoints) == 3 })
	e.registered("svc", "real registration with the flag off", hasAddr("127.0.0.1:8080"))
	if st := e.a.Status(); len(st.MeshDisabled) != 1 || st.Sidecar.State != "up" {
		t.Errorf("status = %+v", st)
	}

	if err := e.a.SetMesh("svc", true); err != nil {
		t.Fatal(err)
	}
	e.answer("svc", "mesh answer again", func(a Answer) bool { return a.Mesh })
	e.registered("svc", "ingress registration again", hasAddr(ingress))

	// A run-time setting outlives a restart.
	if err := e.a.SetMesh("svc", false); err != nil {
		t.Fatal(err)
	}
	e.stop()
	e.start()
	if e.a.MeshEnabled("svc") {
		t.Error("mesh flag lost across restart")
	}
	if err := e.a.SetMesh("bad/name", true); err == nil {
		t.Error("SetMesh accepted a bad name")
	}
	// A typo is refused, and nothing is saved.
	if err := e.a.SetMesh("svcc", false); !errors.Is(err, ErrUnknownService) {
		t.Errorf("SetMesh(unknown) = %v, want ErrUnknownService", err)
	}
	e.stop()
	e.start()
	if st := e.a.Status(); slices.Contains(st.MeshDisabled, "svcc") {
		t.Errorf("the refused flag was saved: %v", st.MeshDisabled)
	}
}

func TestMeshFlagFromConfig(t *testing.T) {
	off := false
	e := newEnv(t, func(c *config.Config) { c.Services = map[string]config.Service{"legacy": {Mesh: &off}} })
	e.remote("legacy")
	if _, err := e.a.Publish(PublishRequest{Service: "legacy", Port: 7000}); err != nil {
		t.Fatal(err)
	}
	e.startSidecar()
	e.waitSidecar(true)
	ans := e.answer("legacy", "known", func(a Answer) bool { return len(a.Endpoints) == 3 })
	if ans.Mesh {
		t.Errorf("config mesh: false ignored: %+v", ans)
	}
	e.registered("legacy", "real registration", func(eps []registry.Endpoint) bool {
		for _, ep := range eps {
			if ep.Addr == "127.0.0.1:7000" && ep.Metadata[MetaMesh] == "false" {
				return true
			}
		}
		return false
	})
}

package agent

import (
	"errors"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestSecondSidecarIsFenced: a second sidecar started by mistake (another
// instance, or the wrong --host-ip) is refused while the agent's own is
// ready, and the mesh stays up; once the agent's own fails its probes, a
// replacement is taken.
func TestSecondSidecarIsFenced(t *testing.T) {
	e := newEnv(t, nil)
	e.ready.Store(true)
	if _, err := e.connectSidecar(&sidecarpb.Hello{AdminAddr: "127.0.0.1:7702", Instance: "real", HostIp: e.cfg.HostIP}); err != nil {
		t.Fatal(err)
	}
	e.waitSidecar(true)

	for name, hello := range map[string]*sidecarpb.Hello{
		"another instance": {AdminAddr: "127.0.0.1:7712", Instance: "intruder", HostIp: e.cfg.HostIP},
		"wrong host_ip":    {AdminAddr: "127.0.0.1:7712", Instance: "real", HostIp: "10.9.9.9"},
	} {
		if _, err := e.connectSidecar(hello); !errors.Is(err, ErrSidecarRefused) {
			t.Fatalf("%s: SidecarConnect = %v, want ErrSidecarRefused", name, err)
		}
	}
	// The agent's own sidecar keeps the mesh through many more probes.
	until := e.probes.Load() + 20
	registrytest.Eventually(t, wait, "20 more probes", func() bool { return e.probes.Load() >= until })
	st := e.a.Status().Sidecar
	if st.State != "up" || st.AdminAddr != "127.0.0.1:7702" || !st.Connected {
		t.Fatalf("the intruder disturbed the sidecar: %+v", st)
	}

	// The agent's own sidecar hangs: its probes fail, a replacement may
	// take over.
	e.ready.Store(false)
	e.waitSidecar(false)
	e.ready.Store(true)
	if _, err := e.connectSidecar(&sidecarpb.Hello{AdminAddr: "127.0.0.1:7712", Instance: "replacement", HostIp: e.cfg.HostIP}); err != nil {
		t.Fatalf("replacement of a failing sidecar refused: %v", err)
	}
	e.waitSidecar(true)
	if got := e.a.Status().Sidecar.AdminAddr; got != "127.0.0.1:7712" {
		t.Errorf("admin addr after the replacement = %s", got)
	}
}

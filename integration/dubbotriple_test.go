package integration

import (
	"net/http"
	"testing"

	"github.com/detourmesh/detour/internal/testbed"
)

// TestDubboGoTripleFrontEnds is TestDubboGoFrontEnds on Dubbo's Triple
// protocol: the unmodified dubbo-go provider on B and consumer on A, both
// --protocol tri (non-IDL, hessian2), each registry pointed at its own
// host's ZooKeeper front end, 100 calls/s. The provider's tri:// node is
// published with protocol tri (B's /v1/status), the registry holds B's
// ingress with detour.protocol tri (on ZooKeeper a tri:// URL), A's
// front end answers a tri:// URL at A's egress (a Triple consumer keeps
// only providers of its own scheme), and both sidecars carry the calls
// as gRPC: their listeners are PROTOCOL_GRPC, and A's egress, its
// endpoint at B's ingress and B's ingress each count a request per call.
// Then A's sidecar SIGKILLed and back, the failed calls counted. What may
// fail is what may fail on the dubbo protocol (see TestDubboGoFrontEnds):
// the calls in flight on the killed hop.
func TestDubboGoTripleFrontEnds(t *testing.T) { every(t, false, dubboGoTripleFrontEnds) }

func dubboGoTripleFrontEnds(t *testing.T, be *backend) {
	m := startDubboMeshOn(t, be, "tri")
	m.checkTakeover(t)
	m.checkGRPC(t)
	m.clientSidecarKilled(t)

	total := m.consumer.stop(t)
	m.carried(t, "from A's sidecar's start to the consumer's end", total.OK, true)
	t.Logf("figure: dubbo-go (%s), whole run: ok=%d failed=%d (%d in the phase above)", m.upstream, total.OK, total.Failed, m.failedInPhases)
	for _, line := range failures(t, m.consumer.Proc) {
		t.Logf("  %s", line)
	}
	if total.Failed != m.failedInPhases {
		t.Errorf("%d calls failed outside the phase", total.Failed-m.failedInPhases)
	}
}

// checkGRPC: B's agent published the provider with protocol tri, and
// both sidecars handle the service as gRPC (A's egress and cluster, B's
// ingress), as their admin /config shows.
func (m *dubboMesh) checkGRPC(t *testing.T) {
	t.Helper()
	var st struct {
		Publications []struct {
			Service  string `json:"service"`
			Protocol string `json:"protocol"`
		} `json:"publications"`
	}
	if err := m.b.API().Do(m.b.ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Publications) != 1 || st.Publications[0].Service != m.service || st.Publications[0].Protocol != "tri" {
		t.Errorf("B's publications %+v; want %s with protocol tri", st.Publications, m.service)
	}
	type item struct {
		Service  string `json:"service"`
		Protocol string `json:"protocol"`
	}
	var cfg struct {
		Snapshot struct {
			Egress   []item `json:"egress"`
			Ingress  []item `json:"ingress"`
			Clusters []item `json:"clusters"`
		} `json:"snapshot"`
	}
	for _, h := range []*host{m.a, m.b} {
		c := &testbed.Client{Base: "http://" + h.AdminAddr()}
		if err := c.Do(h.ctx, http.MethodGet, "/config", nil, &cfg); err != nil {
			t.Fatal(err)
		}
		lists := map[string][]item{"egress": cfg.Snapshot.Egress, "cluster": cfg.Snapshot.Clusters}
		name := "A"
		if h == m.b {
			name, lists = "B", map[string][]item{"ingress": cfg.Snapshot.Ingress}
		}
		for k, list := range lists {
			var got []string
			for _, it := range list {
				if it.Service == m.service {
					got = append(got, it.Protocol)
				}
			}
			if len(got) != 1 || got[0] != "PROTOCOL_GRPC" {
				t.Errorf("%s's sidecar /config: %s of %s with protocols %v; want [PROTOCOL_GRPC]", name, k, m.service, got)
			}
		}
	}
}

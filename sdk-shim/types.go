package shim

import (
	"maps"
	"slices"
	"time"

	"github.com/detourmesh/detour/api/agentpb"
)

// Answer is the agent's full answer for a service.
type Answer struct {
	Service string
	// Mesh: Endpoints is the local sidecar's egress address.
	Mesh bool
	// Endpoints are the addresses to dial.
	Endpoints []string
	// Fallback are the real endpoints, for when the egress refuses.
	Fallback   []string
	Governance Governance
	// Revision changes whenever anything above changes.
	Revision uint64
}

// Governance tells the app how to call the service. While the mesh
// carries it (Mesh true) the sidecar retries, once for every layer, and
// enforces Timeout: the app must not retry (Retries is 0). Otherwise
// (Mesh false) the app's own retry policy and timeouts apply.
type Governance struct {
	Mesh    bool
	Retries int
	Timeout time.Duration
}

// RetriesFor returns how many times the app may retry a call: own, its
// own setting, unless the mesh carries the service.
func (g Governance) RetriesFor(own int) int {
	if g.Mesh {
		return g.Retries
	}
	return own
}

func (a Answer) sameContent(b Answer) bool {
	return a.Service == b.Service && a.Mesh == b.Mesh && a.Governance == b.Governance &&
		slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.Fallback, b.Fallback)
}

// fellBack is a with the sidecar out of the way: the real endpoints and
// the app's own policy.
func (a Answer) fellBack() Answer {
	a.Mesh = false
	a.Endpoints = a.Fallback
	a.Governance = Governance{}
	return a
}

func answerFromPB(p *agentpb.Answer) Answer {
	a := Answer{Service: p.GetService(), Mesh: p.GetMesh(), Revision: p.GetRevision()}
	for _, e := range p.GetEndpoints() {
		a.Endpoints = append(a.Endpoints, e.GetAddr())
	}
	for _, e := range p.GetFallback() {
		a.Fallback = append(a.Fallback, e.GetAddr())
	}
	if g := p.GetGovernance(); g.GetMesh() {
		a.Governance = Governance{Mesh: true, Retries: int(g.GetRetries()), Timeout: time.Duration(g.GetTimeoutMs()) * time.Millisecond}
	}
	return a
}

// PublishRequest is what an app publishes: its service on its own port
// on this host.
type PublishRequest struct {
	Service string
	Port    int
	// Protocol is "tcp" (default), "http" or "grpc".
	Protocol string
	// Metadata is registered with the instance; "detour." keys are the
	// agent's.
	Metadata map[string]string
	Health   HealthCheck
}

// HealthCheck is how the app is checked: "tcp" (default), "http" with a
// path, or "grpc".
type HealthCheck struct {
	Type string
	Path string
}

// Publication is a publication as the agent holds it.
type Publication struct {
	Service     string
	Port        int
	Protocol    string
	Metadata    map[string]string
	Health      HealthCheck
	IngressPort int
	// RegisteredAddr is what the registry holds ("" while withdrawn).
	RegisteredAddr string
	Mesh           bool
	Healthy        bool
}

func (r PublishRequest) pb() *agentpb.PublishRequest {
	return &agentpb.PublishRequest{
		Service: r.Service, Port: uint32(r.Port), Protocol: r.Protocol, Metadata: maps.Clone(r.Metadata),
		Health: &agentpb.HealthCheck{Type: r.Health.Type, Path: r.Health.Path},
	}
}

func publicationFromPB(p *agentpb.Publication) Publication {
	return Publication{
		Service: p.GetService(), Port: int(p.GetPort()), Protocol: p.GetProtocol(), Metadata: maps.Clone(p.GetMetadata()),
		Health:      HealthCheck{Type: p.GetHealth().GetType(), Path: p.GetHealth().GetPath()},
		IngressPort: int(p.GetIngressPort()), RegisteredAddr: p.GetRegisteredAddr(), Mesh: p.GetMesh(), Healthy: p.GetHealthy(),
	}
}

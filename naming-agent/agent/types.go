package agent

import (
	"maps"
	"slices"

	"github.com/detourmesh/detour/api/agentjson"
)

// PublishRequest is what an app asks to publish.
type PublishRequest struct {
	Service  string
	Port     int
	Protocol string // "tcp" (default), "http", "grpc"
	Metadata map[string]string
	Health   HealthSpec
	// Host is the address the app registered itself at, when it did (a
	// registry front end: its own URL's host). It must be an address of
	// this host; the ingress forwards there and the checks dial it, and
	// the real registration keeps it. Empty: ports.app_ip for the
	// sidecar, host_ip in the registry.
	Host string
	// Weight is the instance's share of traffic in the registry (0: the
	// registry's default, 100).
	Weight uint32
	// Owner is who holds the publication: "" for the API, a front end's
	// session otherwise ("zookeeper/0x1f..."), so the front end can end
	// what a session held when the session ends, even across restarts.
	Owner string
	// Update replaces a publication of Service that differs; without it
	// that is ErrConflict.
	Update bool
}

// The API's JSON types live in api/agentjson, so clients decode them
// without linking the agent; the agent uses them under the same names.
type (
	HealthSpec     = agentjson.HealthSpec
	Publication    = agentjson.Publication
	Endpoint       = agentjson.Endpoint
	Governance     = agentjson.Governance
	Answer         = agentjson.Answer
	Status         = agentjson.Status
	RegistryStatus = agentjson.RegistryStatus
	SidecarStatus  = agentjson.SidecarStatus
	ListenerState  = agentjson.ListenerState
	EndpointHealth = agentjson.EndpointHealth
	Subscription   = agentjson.Subscription
)

// sameContent reports whether a and b differ only in Revision.
func sameContent(a, b Answer) bool {
	return a.Service == b.Service && a.Mesh == b.Mesh &&
		slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.Fallback, b.Fallback) &&
		a.Governance.Mesh == b.Governance.Mesh &&
		eqPtr(a.Governance.Retries, b.Governance.Retries) && eqPtr(a.Governance.TimeoutMS, b.Governance.TimeoutMS)
}

func eqPtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}

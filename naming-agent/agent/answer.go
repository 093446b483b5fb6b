package agent

import (
	"net"
	"slices"
	"strconv"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// realAddr is where an instance's app really listens: HOST:detour.port
// for an instance registered through its sidecar, the registered address
// otherwise.
func realAddr(ep registry.Endpoint) string {
	if ep.Metadata[MetaMesh] != "true" {
		return ep.Addr
	}
	port, err := registry.ParsePort(ep.Metadata[MetaPort])
	if err != nil {
		return ep.Addr
	}
	host, _, err := net.SplitHostPort(ep.Addr)
	if err != nil {
		return ep.Addr
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// realEndpoints is the sorted, de-duplicated real addresses of eps.
func realEndpoints(eps []registry.Endpoint) []Endpoint {
	out := make([]Endpoint, 0, len(eps))
	for _, ep := range eps {
		out = append(out, Endpoint{Addr: realAddr(ep)})
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	return slices.Compact(out)
}

// egressCarriedLocked: the sidecar is up, the service is in the mesh and
// the acknowledged snapshot has its egress listener.
func (a *Agent) egressCarriedLocked(s *subscription) bool {
	if !a.sc.up || s.egress == 0 || !a.meshEnabledLocked(s.service) {
		return false
	}
	return a.sc.ackedEgress[s.service] == a.egressListen(s)
}

func (a *Agent) egressListen(s *subscription) string {
	return net.JoinHostPort(a.cfg.Ports.EgressIP, strconv.Itoa(s.egress))
}

// computeAnswerLocked is the answer for s from the whole state, without
// a revision. While the mesh carries the service the app dials the local
// egress listener, retries nothing and uses the sidecar's timeout;
// otherwise it dials the real endpoints with its own policy. The real
// endpoints are always in Fallback.
func (a *Agent) computeAnswerLocked(s *subscription) Answer {
	real := realEndpoints(s.eps)
	ans := Answer{Service: s.service, Endpoints: real, Fallback: real}
	if !a.egressCarriedLocked(s) {
		return ans
	}
	set := a.cfg.ServiceSettings(s.service)
	zero, ms := 0, set.Timeout.Milliseconds()
	ans.Mesh = true
	ans.Governance = Governance{Mesh: true, Retries: &zero, TimeoutMS: &ms}
	ans.Endpoints = []Endpoint{}
	if len(real) > 0 {
		ans.Endpoints = []Endpoint{{Addr: a.egressListen(s)}}
	}
	return ans
}

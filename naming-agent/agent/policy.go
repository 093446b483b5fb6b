package agent

import (
	"fmt"
	"net"
	"strconv"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/naming-agent/frontend/nacos"
)

// The publish policy is the one rule for which app ports may be
// published, by the API and by the front ends alike (they all publish
// through Publish). A publication is reachable from the network through
// the ingress, so the agent refuses its own and its sidecar's ports
// (API, gRPC, admin with pprof, health, the front ends, the embedded
// registry) and every ingress and egress port it has handed out:
// publishing one would expose a loopback-only control port, or loop the
// ingress into itself. The rest of the ingress range stays open: Dubbo's
// default port 20880 lies in the default range, and the allocator never
// hands out a port an app already holds. api.allowed_ports, when set,
// narrows what else may be published.

// reservedPort is one port the agent keeps from publication and why.
type reservedPort struct {
	port int
	what string
}

// reservedPorts lists cfg's own single ports (not the ranges).
func reservedPorts(cfg config.Config) []reservedPort {
	var out []reservedPort
	add := func(what, addr string, offset int) {
		if addr == "" {
			return
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return
		}
		if n, err := strconv.Atoi(p); err == nil && n > 0 {
			out = append(out, reservedPort{n + offset, what})
		}
	}
	add("the agent's HTTP API (http_listen)", cfg.HTTPListen, 0)
	add("the agent's gRPC API (grpc_listen)", cfg.GRPCListen, 0)
	add("the sidecar's admin (sidecar.admin)", cfg.Sidecar.Admin, 0)
	if cfg.Ports.Health > 0 {
		out = append(out, reservedPort{cfg.Ports.Health, "the sidecar's health port (ports.health)"})
	}
	if cfg.Registry.URL == "embedded" {
		add("the embedded registry (registry.embedded.client_listen)", cfg.Registry.Embedded.ClientListen, 0)
		add("the embedded registry (registry.embedded.peer_listen)", cfg.Registry.Embedded.PeerListen, 0)
	}
	add("the ZooKeeper front end (frontends.zookeeper.listen)", cfg.Frontends.ZooKeeper.Listen, 0)
	add("the Nacos front end (frontends.nacos.listen)", cfg.Frontends.Nacos.Listen, 0)
	add("the Nacos front end's gRPC (frontends.nacos.listen + 1000)", cfg.Frontends.Nacos.Listen, nacos.GRPCPortOffset)
	return out
}

// checkPublishPort says why port may not be published, or nil. The error
// wraps ErrForbidden.
func (a *Agent) checkPublishPort(port int) error {
	for _, r := range a.reserved {
		if r.port == port {
			return fmt.Errorf("%w: port %d is %s: it is never published", ErrForbidden, port, r.what)
		}
	}
	for _, pool := range []string{poolIngress, poolEgress} {
		for svc, p := range a.ports.All(pool) {
			if p == port {
				return fmt.Errorf("%w: port %d is the sidecar's %s port of service %q", ErrForbidden, port, pool, svc)
			}
		}
	}
	if allowed := a.cfg.API.AllowedPorts; len(allowed) > 0 {
		for _, r := range allowed {
			if r.Contains(port) {
				return nil
			}
		}
		return fmt.Errorf("%w: port %d is not in api.allowed_ports", ErrForbidden, port)
	}
	return nil
}

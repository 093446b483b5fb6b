// Package agent is the naming agent's core: publications, subscriptions,
// the per-service mesh flag, the sidecar's state and the fallback
// decision, and the desired state of the sidecar's data plane.
//
// One Agent owns all of it behind one lock. Every change (a publish, a
// registry update, a sidecar ack, a failed probe) goes through the same
// recompute step, which derives from the whole state at once:
//
//   - the answer for every subscribed service, with a revision that
//     changes whenever the answer does, and a wake-up of every waiter;
//   - the sidecar snapshot: complete, versioned, never partial;
//   - the registration every publication should have, which a single
//     registrar goroutine brings the registry to.
//
// The agent depends on registry.Registry only; main wires the adapter.
//
// Metadata keys the agent writes on every registration:
//
//	detour.mesh         "true" when the address is the sidecar's ingress, "false" when it is the app
//	detour.port         the app's real port on the registered host
//	detour.protocol     "tcp", "http" or "grpc"
//	detour.health_port  the sidecar's health port (only with detour.mesh "true")
package agent

// Metadata keys written on registrations, and read from remote ones.
const (
	MetaMesh       = "detour.mesh"
	MetaPort       = "detour.port"
	MetaProtocol   = "detour.protocol"
	MetaHealthPort = "detour.health_port"
	// MetaReservedPrefix: apps may not set keys with this prefix.
	MetaReservedPrefix = "detour."
)

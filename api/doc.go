// Package api holds detour's wire contracts: the .proto files under proto/
// and their generated Go code, agentpb (the agent API, detour.agent.v1)
// and sidecarpb (the sidecar control stream, detour.sidecar.v1). It is a
// leaf: it imports nothing of detour's, so the sidecar and the SDK shim
// depend on the contract, never on the agent. Regenerate with `make gen`.
package api

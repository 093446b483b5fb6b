// Package etcd is the detour registry adapter for etcd v3.
//
// It stores endpoints in the layout of etcd's own naming/endpoints manager
// (go.etcd.io/etcd/client/v3/naming/endpoints): the key PREFIX/SERVICE/ADDR
// holds the JSON {"Op":0,"Addr":ADDR,"Metadata":{...}}, so gRPC
// applications that resolve etcd:///PREFIX/SERVICE with etcd's resolver see
// detour's instances, and detour sees theirs. Metadata is a JSON object of
// strings; the endpoint's weight is stored in it under
// registry.ReservedWeightKey as a decimal string.
//
// Every registration of one Registry is bound to a single lease, kept alive
// for as long as the Registry is open. When the lease is lost (revoked,
// expired during a partition, etcd restarted without it) the Registry
// grants a new one and writes every registration again by itself.
//
// Watchers list a service, then watch it from the listed revision on, and
// re-list after a compaction or an outage; they report an outage once
// through Next and keep retrying until etcd answers again.
package etcd

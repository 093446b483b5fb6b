// Package embedded runs an etcd server inside the process and is a detour
// registry on it: the default registry of the naming agent, so one machine
// needs nothing installed.
//
// The server is a plain single-member etcd (go.etcd.io/etcd/server/v3/embed):
// other agents and tools point at ClientURL as at any etcd. The registry is
// the etcd adapter (package etcd) on a client of that server, with the same
// key layout.
package embedded

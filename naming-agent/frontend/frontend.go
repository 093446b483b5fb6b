// Package frontend is the one small interface between the naming agent's
// core and its registry front ends: the ZooKeeper, Nacos and etcd
// servers local apps use as their registry, unchanged but for its
// address. A front end turns an app's registration into a Publication
// and an app's read or watch into a Watch of the service's View, and
// maps both to its registry's own shape; no wire code lives in the core,
// and a front end reaches the core only through Core.
//
// The model is grpc-go's resolver and etcd's naming Manager: few
// methods, whole state pushed each time, concurrency rules stated here.
package frontend

import (
	"context"
	"errors"
)

// ErrNotHeld: Unpublish of a service the owner does not hold (never did,
// or another session of the same front end took it over).
var ErrNotHeld = errors.New("not held by this owner")

// Core is the agent as a front end sees it. Every method is safe for
// concurrent use.
type Core interface {
	// Publish publishes p for p.Owner. The same owner, or another
	// session of the same front end (the owners' parts before '/' are
	// equal: an app that restarted before its old session ended),
	// replaces the publication of the service; one the API or another
	// front end holds is an error. The publication is durable: it
	// outlives the agent's process until Unpublish.
	Publish(p Publication) error
	// Unpublish ends owner's publication of service; one owner does not
	// hold is ErrNotHeld.
	Unpublish(owner, service string) error
	// Owned returns the publications whose Owner starts with prefix: at
	// start, a front end ends those of sessions it could not restore.
	Owned(prefix string) []Publication
	// Watch subscribes the host to service and calls fn with its View
	// now and each time it changes, until ctx ends (then it returns
	// ctx.Err()). Calls to fn are sequential; fn must not block for
	// long, and must not call Watch for the same ctx.
	Watch(ctx context.Context, service string, fn func(View)) error
}

// Publication is an app's registration as a front end received it.
type Publication struct {
	Service  string // the registry's service name (a Dubbo interface, a Nacos service)
	Host     string // the address the app registered: an address of this host
	Port     int
	Protocol string // "tcp", "http", "grpc", "dubbo", "tri": the sidecar's handling
	Weight   uint32 // share of traffic; 0: the registry's default
	// Metadata is every other field of the app's record the registry
	// keeps (URL parameters, scheme, weight, cluster), so the record
	// the agent registers is the app's own with only the address
	// rewritten. Keys starting "detour." are the agent's.
	Metadata map[string]string
	// Owner names who holds it, "FRONTEND/SESSION" ("zookeeper/0x1f2e").
	Owner string
}

// View is a service as the apps of this host should see it.
type View struct {
	Service  string
	Revision uint64 // changes whenever anything below does
	// Known: the registry (or the agent's cache) has answered; until
	// then Instances is empty because nothing is known, not because the
	// service has none.
	Known bool
	// Mesh: the local sidecar's egress carries the service; every
	// instance is to be shown at Egress (EGRESS_IP:PORT), which balances
	// over them. Otherwise the apps dial each instance's Addr.
	Mesh   bool
	Egress string
	// Instances are the serving instances, sorted by Addr.
	Instances []Instance
}

// Instance is one serving instance of a service.
type Instance struct {
	// Addr is where the instance's app itself listens (for an instance
	// registered through its sidecar: HOST:its real port).
	Addr string
	// Protocol is what the instance declared ("dubbo", "tri", "grpc",
	// ...), "" if nothing: a front end picks the record's scheme by it.
	Protocol string
	// Weight is its share of traffic (registry.DefaultWeight when it
	// registered none).
	Weight uint32
	// Metadata is what its app registered, without the agent's
	// "detour." keys.
	Metadata map[string]string
}

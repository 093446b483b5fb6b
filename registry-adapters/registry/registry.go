package registry

import (
	"context"
	"errors"
)

// Sentinel errors. Adapters wrap them with context
// (fmt.Errorf("zookeeper: watch %q: %w", svc, err)); callers test with
// errors.Is. Only the API layer maps them to HTTP or gRPC status codes.
var (
	// ErrNotFound: the thing asked for is not there (Deregister of an
	// endpoint this client never registered).
	ErrNotFound = errors.New("not found")
	// ErrClosed: the Registry or Watcher was closed.
	ErrClosed = errors.New("closed")
	// ErrUnavailable: the registry cannot be reached right now. The call
	// may succeed later; watchers keep trying by themselves.
	ErrUnavailable = errors.New("registry unavailable")
	// ErrInvalid: the caller's input is malformed (bad service name,
	// address, weight or metadata). Retrying will not help.
	ErrInvalid = errors.New("invalid argument")
)

// Registry is a client of one service registry (an etcd cluster, a
// ZooKeeper ensemble, a Nacos namespace). It holds one session to the
// registry on behalf of the whole process.
//
// All methods are safe for concurrent use.
//
// Registrations belong to the client that made them: they last until
// Deregister or Close, and the registry drops them when the client's
// session ends (an etcd lease, a ZooKeeper session, a Nacos connection), so
// a crashed process leaves nothing behind. While the client is open it
// keeps them alive: when the session or lease is lost and a new one is
// made, the adapter writes every registration again without the caller
// doing anything.
type Registry interface {
	// Register publishes ep, or replaces the endpoint with the same Service
	// and Addr that this client registered before. ep is validated first;
	// an invalid endpoint gets an error wrapping ErrInvalid. When Register
	// returns an error nothing is recorded and the caller may retry; when
	// it returns nil the adapter keeps the registration alive as above.
	Register(ctx context.Context, ep Endpoint) error

	// Deregister removes the endpoint (service, addr) that this client
	// registered. It returns an error wrapping ErrNotFound if this client
	// holds no such registration.
	Deregister(ctx context.Context, service, addr string) error

	// List returns the endpoints of service that are currently serving,
	// from every client, sorted by Addr. Entries that cannot be parsed are
	// skipped (see MalformedFunc). An unknown service has no endpoints; it
	// is not an error.
	List(ctx context.Context, service string) ([]Endpoint, error)

	// Watch starts watching service. The returned Watcher's first Next
	// returns the current set.
	Watch(ctx context.Context, service string) (Watcher, error)

	// Close deregisters everything this client registered, stops its
	// watchers and releases the session. Calls after Close return
	// ErrClosed. Close is idempotent.
	Close() error
}

// Watcher follows the endpoint set of one service.
//
// It owns listing, revision tracking and reconnects: it lists first and
// watches from the listed revision on, so no change falls between, and it
// re-lists by itself when the registry makes it (compaction, reconnect,
// session expiry).
//
// Next is not safe for concurrent use by several goroutines; Close may be
// called concurrently with Next and makes it return ErrClosed.
type Watcher interface {
	// Next returns the full set of serving endpoints, sorted by Addr. The
	// first call returns at once with the current set (possibly empty);
	// each later call blocks until the set differs from the one last
	// returned.
	//
	// Errors: ctx.Err() when ctx ends; ErrClosed after Close; an error
	// wrapping ErrUnavailable when the registry cannot be reached. The
	// latter is transient: the watcher keeps reconnecting, and the next
	// call returns the set as soon as it can be read again, even when it
	// is the same set as before the outage, so the caller learns that the
	// registry is back.
	Next(ctx context.Context) ([]Endpoint, error)

	// Close stops the watch. It is idempotent.
	Close() error
}

// MalformedFunc is told about every registry entry an adapter skips because
// it cannot parse it: service, the entry's raw key (an etcd key, a
// ZooKeeper node name, a Nacos instance id) and why. Adapters call it once
// per distinct bad entry, not on every re-list, and never stop a watch for
// it. It must not block.
type MalformedFunc func(service, key string, err error)

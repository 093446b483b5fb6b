// Package registrytest holds the conformance suite every registry adapter
// passes against its real server, an in-memory Fake registry that tests of
// the naming agent can drive (outages, session loss), and the propagation
// benchmark shared by the adapters.
package registrytest

import (
	"os"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Harness is what an adapter hands the suite: a way to make independent
// clients of one real server, and two things only a raw client of that
// server can do.
type Harness struct {
	// New returns a new client of the server under test with its own
	// session, independent of every other client. onMalformed must reach
	// the adapter's MalformedFunc. The harness closes the client in
	// t.Cleanup; closing it twice must be harmless.
	New func(t testing.TB, onMalformed registry.MalformedFunc) registry.Registry

	// WriteMalformed writes, with a raw client of the server, one entry
	// under service that the adapter cannot parse (bad JSON, a broken
	// Dubbo URL, an instance with no port) and returns its raw key.
	WriteMalformed func(t testing.TB, service string) (key string)

	// LoseSession makes the server drop r's session from outside, as a
	// partition, a revoked lease or a restart would: revoke the etcd lease,
	// expire the ZooKeeper session, close the Nacos connection. It returns
	// once the server has dropped it; r must then restore its
	// registrations by itself.
	LoseSession func(t testing.TB, r registry.Registry)

	// Timeout bounds how long the suite waits for a change to show in
	// another client. Default 10s.
	Timeout time.Duration

	// The three fields below are set by adapters that take a session back
	// after a crash (registry.Resumer); with all of them the suite runs
	// its SessionResume subtest. Leave them nil for the others.

	// NewWithStore returns a client like New (the harness closes it in
	// t.Cleanup) whose adapter keeps its session in store, through its
	// WithSessionStore option. The client implements registry.Resumer.
	NewWithStore func(t testing.TB, store registry.SessionStore) registry.Registry

	// Crash drops r as SIGKILL drops a process: it stops talking to the
	// server at once (no keep-alives, its connections closed) without
	// ending the session (no lease revoke, no closeSession), and never
	// reconnects. The server keeps r's registrations until SessionTTL
	// passes.
	Crash func(t testing.TB, r registry.Registry)

	// SessionTTL is how long the server keeps the session of a crashed
	// client: the etcd lease TTL, the ZooKeeper session timeout.
	SessionTTL time.Duration
}

func (h Harness) canResume() bool {
	return h.NewWithStore != nil && h.Crash != nil && h.SessionTTL > 0
}

func (h Harness) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return 10 * time.Second
}

// RequireEnv returns the value of the environment variable naming a test
// server's address. When it is unset the test fails under CI (CI=true),
// because a missing server there is a broken setup, not a reason to pass;
// on a developer's machine it skips with a message saying how to get one.
func RequireEnv(t testing.TB, name, how string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set and CI=true: the test server is missing (%s)", name, how)
	}
	t.Skipf("%s is not set; %s", name, how)
	return ""
}

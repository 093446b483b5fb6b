package etcd_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// observed returns a logger that writes to the test log and records
// entries, so a test can wait for the adapter to log an event.
func observed(t testing.TB) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core)), logs
}

func waitLog(t testing.TB, logs *observer.ObservedLogs, msg string) {
	t.Helper()
	registrytest.Eventually(t, 20*time.Second, "log "+msg, func() bool {
		return logs.FilterMessage(msg).Len() > 0
	})
}

func hostPort(t testing.TB, clientURL string) string {
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestServerRestart stops etcd for longer than the lease TTL and starts it
// again on the same data dir and port, or on an empty one (all data lost):
// either way the owner's registrations come back by themselves, the
// observer's watcher reports the outage once and then resumes, and a
// Register made during the outage fails and is not kept.
func TestServerRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wipeData bool
	}{
		{"same data dir", false},
		{"data lost", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := startServerAt(t, dir, "127.0.0.1:0")
			addr := hostPort(t, srv.ClientURL())
			log, logs := observed(t)
			owner := newRegistry(t, srv, etcd.WithLogger(log))
			obs := newRegistry(t, srv)
			// Close them before the restarted server stops (t.Cleanup
			// would stop it first), so Close need not wait for it.
			defer obs.Close()
			defer owner.Close()
			svc := registrytest.Service(t)
			e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"detour.port": "8080"}}
			e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001", Weight: 3}
			mustRegister(t, owner, e1)
			mustRegister(t, owner, e2)
			want := normalized(t, e1, e2)
			w, err := obs.Watch(testContext(t), svc)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			h := registrytest.Harness{Timeout: 20 * time.Second}
			registrytest.NextUntil(t, h, w, want)

			_ = srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := w.Next(ctx); !errors.Is(err, registry.ErrUnavailable) {
				t.Fatalf("Next with etcd down = %v, want ErrUnavailable", err)
			}
			// Reported once: the next Next waits.
			short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
			_, err = w.Next(short)
			cancelShort()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("second Next with etcd down = %v, want DeadlineExceeded", err)
			}
			lost := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9002"}
			if err := owner.Register(ctx, lost); !errors.Is(err, registry.ErrUnavailable) {
				t.Fatalf("Register with etcd down = %v, want ErrUnavailable", err)
			}
			// Past the lease TTL the owner's client gives the lease up.
			waitLog(t, logs, "lease lost, restoring registrations")

			if tc.wipeData {
				dir = t.TempDir()
			}
			startServerAt(t, dir, addr)
			registrytest.EventuallyList(t, h, obs, svc, want)
			registrytest.NextUntil(t, h, w, want)
			waitLog(t, logs, "lease renewed, registrations written again")

			// The restored session works.
			e3 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9003"}
			mustRegister(t, owner, e3)
			if err := owner.Deregister(ctx, svc, e1.Addr); err != nil {
				t.Fatal(err)
			}
			registrytest.NextUntil(t, h, w, normalized(t, e2, e3))
		})
	}
}

func normalized(t testing.TB, eps ...registry.Endpoint) []registry.Endpoint {
	t.Helper()
	out := make([]registry.Endpoint, len(eps))
	for i, ep := range eps {
		n, err := ep.Normalized()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = n
	}
	registry.Sort(out)
	return out
}

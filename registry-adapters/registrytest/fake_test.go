package registrytest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fakeHarness(s *registrytest.FakeServer) registrytest.Harness {
	return registrytest.Harness{
		New: func(t testing.TB, onMalformed registry.MalformedFunc) registry.Registry {
			c := s.Client(onMalformed)
			t.Cleanup(func() { c.Close() })
			return c
		},
		WriteMalformed: func(t testing.TB, service string) string { return s.WriteMalformed(service) },
		LoseSession:    func(t testing.TB, r registry.Registry) { s.ExpireSession(r.(*registrytest.Fake)) },
		Timeout:        2 * time.Second,
	}
}

// The fake passes the suite, which also proves the suite itself runs.
func TestFakeConformance(t *testing.T) {
	registrytest.Run(t, fakeHarness(registrytest.NewFakeServer()))
}

func TestFakeOutage(t *testing.T) {
	s := registrytest.NewFakeServer()
	h := fakeHarness(s)
	ctx := context.Background()
	a, b := h.New(t, nil), h.New(t, nil)
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:1"}
	if err := a.Register(ctx, ep); err != nil {
		t.Fatal(err)
	}
	w, err := b.Watch(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := w.Next(ctx); err != nil || len(got) != 1 {
		t.Fatalf("Next = %v, %v", got, err)
	}

	s.SetDown(true)
	if _, err := w.Next(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Next while down = %v, want ErrUnavailable", err)
	}
	if err := a.Register(ctx, registry.Endpoint{Service: svc, Addr: "127.0.0.2:2"}); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Register while down = %v, want ErrUnavailable", err)
	}
	s.ExpireSession(a.(*registrytest.Fake)) // lost while down: restored when up

	s.SetDown(false)
	registrytest.NextUntil(t, h, w, []registry.Endpoint{{Service: svc, Addr: "127.0.0.2:1", Weight: registry.DefaultWeight, Metadata: map[string]string{}}})
}

package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Run runs the conformance suite against the server h reaches. Every
// adapter passes it against its real server; each subtest uses its own
// service names, so a shared server is fine. Adapters that take a session
// back after a crash (h.NewWithStore, h.Crash, h.SessionTTL) also run
// SessionResume and SessionResumeAfterExpiry.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"RegisterVisibleToOtherClient", testRegisterVisible},
		{"TwoInstances", testTwoInstances},
		{"Deregister", testDeregister},
		{"RegisterAgainReplaces", testRegisterAgainReplaces},
		{"WatchSeesAddUpdateRemove", testWatchChanges},
		{"WatchersAreIndependent", testWatchersIndependent},
		{"SessionEndRemovesInstances", testSessionEnd},
		{"SessionLossRestoresRegistrations", testSessionLoss},
		{"MetadataRoundTrips", testMetadataRoundTrip},
		{"MalformedEntrySkippedAndCounted", testMalformed},
		{"InvalidInputRefused", testInvalidInput},
		{"UnknownServiceIsEmpty", testUnknownService},
		{"ClosedReturnsErrClosed", testClosed},
		{"WatcherCloseUnblocksNext", testWatcherCloseUnblocks},
		{"NextHonoursContext", testNextContext},
	}
	if h.canResume() {
		tests = append(tests, []struct {
			name string
			fn   func(*testing.T, Harness)
		}{
			{"SessionResume", testSessionResume},
			{"SessionResumeAfterExpiry", testSessionResumeExpired},
		}...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// Service returns a service name no other test uses.
func Service(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", ".", "_", "-").Replace(t.Name())
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return strings.Trim("t."+name, ".-") + "." + hex.EncodeToString(b[:])
}

func ctxFor(t testing.TB, h Harness) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*h.timeout())
	t.Cleanup(cancel)
	return ctx
}

func mustRegister(t testing.TB, ctx context.Context, r registry.Registry, ep registry.Endpoint) {
	t.Helper()
	if err := r.Register(ctx, ep); err != nil {
		t.Fatalf("Register(%v): %v", ep, err)
	}
}

// want builds the endpoint a reader should see for what was registered.
func want(ep registry.Endpoint) registry.Endpoint {
	n, err := ep.Normalized()
	if err != nil {
		panic(err)
	}
	return n
}

func set(eps ...registry.Endpoint) []registry.Endpoint {
	out := make([]registry.Endpoint, 0, len(eps))
	for _, ep := range eps {
		out = append(out, want(ep))
	}
	registry.Sort(out)
	return out
}

func testRegisterVisible(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.1:20880", Metadata: map[string]string{"detour.port": "8080"}}
	mustRegister(t, ctx, a, ep)
	EventuallyList(t, h, b, svc, set(ep))
}

func testTwoInstances(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Weight: 50}
	e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.3:9000", Weight: 150}
	mustRegister(t, ctx, a, e1)
	mustRegister(t, ctx, b, e2)
	EventuallyList(t, h, a, svc, set(e1, e2))
	EventuallyList(t, h, b, svc, set(e1, e2))
	// Two instances of one service from one client as well.
	e3 := registry.Endpoint{Service: svc, Addr: "127.0.0.4:9000"}
	mustRegister(t, ctx, a, e3)
	EventuallyList(t, h, b, svc, set(e1, e2, e3))
}

func testDeregister(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001"}
	mustRegister(t, ctx, a, e1)
	mustRegister(t, ctx, a, e2)
	EventuallyList(t, h, b, svc, set(e1, e2))
	if err := a.Deregister(ctx, svc, e1.Addr); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	EventuallyList(t, h, b, svc, set(e2))
	if err := a.Deregister(ctx, svc, e1.Addr); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second Deregister = %v, want ErrNotFound", err)
	}
	// b never registered e2: it cannot remove a's registration.
	if err := b.Deregister(ctx, svc, e2.Addr); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Deregister by another client = %v, want ErrNotFound", err)
	}
	EventuallyList(t, h, b, svc, set(e2))
}

func testRegisterAgainReplaces(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"v": "1"}}
	mustRegister(t, ctx, a, ep)
	EventuallyList(t, h, b, svc, set(ep))
	ep2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Weight: 7, Metadata: map[string]string{"v": "2", "extra": "x"}}
	mustRegister(t, ctx, a, ep2)
	EventuallyList(t, h, b, svc, set(ep2))
	// The caller's map is not kept: changing it changes nothing.
	ep2.Metadata["v"] = "mutated"
	EventuallyList(t, h, b, svc, set(registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Weight: 7, Metadata: map[string]string{"v": "2", "extra": "x"}}))
}

func testWatchChanges(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	w, err := b.Watch(ctx, svc)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer w.Close()
	first, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("first Next: %v", err)
	}
	if len(first) != 0 {
		t.Fatalf("first Next = %v, want empty", first)
	}
	e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"v": "1"}}
	mustRegister(t, ctx, a, e1)
	NextUntil(t, h, w, set(e1))

	e1b := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"v": "2"}}
	mustRegister(t, ctx, a, e1b)
	NextUntil(t, h, w, set(e1b))

	e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.3:9000"}
	mustRegister(t, ctx, a, e2)
	NextUntil(t, h, w, set(e1b, e2))

	if err := a.Deregister(ctx, svc, e1b.Addr); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	NextUntil(t, h, w, set(e2))
}

func testWatchersIndependent(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	s1, s2 := Service(t), Service(t)
	w1, err := b.Watch(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := b.Watch(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	w3, err := b.Watch(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	defer w3.Close()
	for _, w := range []registry.Watcher{w1, w2, w3} {
		if _, err := w.Next(ctx); err != nil {
			t.Fatalf("first Next: %v", err)
		}
	}
	// Closing one watcher leaves the others of the same service working.
	if err := w2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e := registry.Endpoint{Service: s1, Addr: "127.0.0.2:9000"}
	mustRegister(t, ctx, a, e)
	NextUntil(t, h, w1, set(e))
	e2 := registry.Endpoint{Service: s2, Addr: "127.0.0.2:9001"}
	mustRegister(t, ctx, a, e2)
	NextUntil(t, h, w3, set(e2))
}

func testSessionEnd(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	mine := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	other := registry.Endpoint{Service: svc, Addr: "127.0.0.3:9000"}
	mustRegister(t, ctx, a, mine)
	mustRegister(t, ctx, b, other)
	w, err := b.Watch(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	NextUntil(t, h, w, set(mine, other))
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	NextUntil(t, h, w, set(other))
}

func testSessionLoss(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"detour.port": "8080"}}
	e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001"}
	mustRegister(t, ctx, a, e1)
	mustRegister(t, ctx, a, e2)
	EventuallyList(t, h, b, svc, set(e1, e2))

	h.LoseSession(t, a)
	EventuallyList(t, h, b, svc, set(e1, e2))

	// The restored session is a working one: new registrations and
	// deregistrations take effect.
	e3 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9002"}
	mustRegister(t, ctx, a, e3)
	if err := a.Deregister(ctx, svc, e1.Addr); err != nil {
		t.Fatalf("Deregister after session loss: %v", err)
	}
	EventuallyList(t, h, b, svc, set(e2, e3))
}

func testMetadataRoundTrip(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a, b := h.New(t, nil), h.New(t, nil)
	svc := Service(t)
	md := map[string]string{
		"detour.port":        "20880",
		"detour.protocol":    "grpc",
		"detour.health_port": "15021",
		"detour.mesh":        "true",
		"empty":              "",
		"spaces":             "a b  c",
		"url-chars":          "a=b&c=d?e#f/g%20h+i;j,k",
		"unicode":            "grüße, 服务 ✓",
		"quotes":             `"json" 'single' \back`,
		"long":               strings.Repeat("x", 1000),
	}
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:15001", Weight: 42, Metadata: md}
	mustRegister(t, ctx, a, ep)
	EventuallyList(t, h, b, svc, set(ep))

	w, err := b.Watch(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	NextUntil(t, h, w, set(ep))
}

func testMalformed(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a := h.New(t, nil)
	counter := NewMalformedCounter()
	b := h.New(t, counter.Func)
	svc := Service(t)
	good := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	mustRegister(t, ctx, a, good)

	w, err := b.Watch(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	NextUntil(t, h, w, set(good))

	key := h.WriteMalformed(t, svc)

	// The watch goes on past the bad entry and sees later changes.
	good2 := registry.Endpoint{Service: svc, Addr: "127.0.0.3:9000"}
	mustRegister(t, ctx, a, good2)
	NextUntil(t, h, w, set(good, good2))
	EventuallyList(t, h, b, svc, set(good, good2))

	Eventually(t, h.timeout(), "malformed entry reported", func() bool { return counter.Count(svc) > 0 })
	// Reported once per distinct entry, not on every read.
	for range 3 {
		if _, err := b.List(ctx, svc); err != nil {
			t.Fatalf("List: %v", err)
		}
	}
	if n := counter.Count(svc); n != 1 {
		t.Errorf("malformed entry %q reported %d times after repeated reads, want 1 (keys: %v)", key, n, counter.Keys(svc))
	}
}

func testInvalidInput(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a := h.New(t, nil)
	svc := Service(t)
	bad := []registry.Endpoint{
		{Service: "", Addr: "127.0.0.2:9000"},
		{Service: "a/b", Addr: "127.0.0.2:9000"},
		{Service: "-lead", Addr: "127.0.0.2:9000"},
		{Service: "sp ace", Addr: "127.0.0.2:9000"},
		{Service: strings.Repeat("s", 256), Addr: "127.0.0.2:9000"},
		{Service: svc, Addr: ""},
		{Service: svc, Addr: "127.0.0.2"},
		{Service: svc, Addr: "127.0.0.2:0"},
		{Service: svc, Addr: "127.0.0.2:65536"},
		{Service: svc, Addr: "127.0.0.2:http"},
		{Service: svc, Addr: "0.0.0.0:9000"},
		{Service: svc, Addr: "bad_host!:9000"},
		{Service: svc, Addr: "127.0.0.2:9000", Weight: registry.MaxWeight + 1},
		{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"": "x"}},
		{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"weight": "1"}},
		{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"k": "a\x00b"}},
	}
	for _, ep := range bad {
		if err := a.Register(ctx, ep); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Register(%+v) = %v, want ErrInvalid", ep, err)
		}
	}
	for _, name := range []string{"", "a/b", "x y"} {
		if _, err := a.List(ctx, name); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("List(%q) = %v, want ErrInvalid", name, err)
		}
		if _, err := a.Watch(ctx, name); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Watch(%q) = %v, want ErrInvalid", name, err)
		}
	}
	// Nothing of the above was registered.
	got, err := a.List(ctx, svc)
	if err != nil || len(got) != 0 {
		t.Errorf("List after refused registrations = %v, %v; want empty", got, err)
	}
}

func testUnknownService(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a := h.New(t, nil)
	got, err := a.List(ctx, Service(t))
	if err != nil || len(got) != 0 {
		t.Errorf("List(unknown) = %v, %v; want empty, nil", got, err)
	}
}

func testClosed(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a := h.New(t, nil)
	svc := Service(t)
	w, err := a.Watch(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	if err := a.Register(ctx, ep); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Register after Close = %v, want ErrClosed", err)
	}
	if err := a.Deregister(ctx, svc, ep.Addr); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Deregister after Close = %v, want ErrClosed", err)
	}
	if _, err := a.List(ctx, svc); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("List after Close = %v, want ErrClosed", err)
	}
	if _, err := a.Watch(ctx, svc); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
	if _, err := w.Next(ctx); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Next on a watcher of a closed registry = %v, want ErrClosed", err)
	}
}

func testWatcherCloseUnblocks(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a := h.New(t, nil)
	w, err := a.Watch(ctx, Service(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := w.Next(ctx)
		errc <- err
	}()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, registry.ErrClosed) {
			t.Errorf("blocked Next after Close = %v, want ErrClosed", err)
		}
	case <-time.After(h.timeout()):
		t.Fatal("Next still blocked after the watcher was closed")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func testNextContext(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	a := h.New(t, nil)
	svc := Service(t)
	w, err := a.Watch(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with nothing changing = %v, want context.DeadlineExceeded", err)
	}
	// The watcher still works after a Next that timed out.
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	mustRegister(t, ctx, a, ep)
	NextUntil(t, h, w, set(ep))
}

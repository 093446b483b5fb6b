package nacos

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// These tests need the test server's controls, so they run against it
// even when NACOS_ADDR is set.

func serverAddrs(e *testEnv, service string) []string {
	var out []string
	for _, in := range e.srv.Instances(e.namespace, e.group, service) {
		out = append(out, in.Ip+":"+strconv.FormatUint(in.Port, 10))
	}
	slices.Sort(out)
	return out
}

func eventuallyServer(t *testing.T, e *testEnv, service string, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	registrytest.Eventually(t, 10*time.Second, service+" on the server = "+strings.Join(want, ","), func() bool {
		return slices.Equal(serverAddrs(e, service), want)
	})
}

func ep(service, addr string) registry.Endpoint {
	return registry.Endpoint{Service: service, Addr: addr, Metadata: map[string]string{"detour.port": "8080"}}
}

// Nacos 2.x keeps one publication per connection and service; several
// addresses of one service from one client must all be there, and
// removing one must leave the others.
func TestSeveralAddrsOfOneServiceOnOneConnection(t *testing.T) {
	e := testServer(t)
	ctx := testCtx(t)
	r := e.newRegistry(t, e.config(), false)
	for _, a := range []string{"127.0.0.2:9000", "127.0.0.2:9001", "127.0.0.3:9000"} {
		if err := r.Register(ctx, ep("svc", a)); err != nil {
			t.Fatal(err)
		}
	}
	if got := serverAddrs(e, "svc"); !slices.Equal(got, []string{"127.0.0.2:9000", "127.0.0.2:9001", "127.0.0.3:9000"}) {
		t.Fatalf("server holds %v", got)
	}
	if err := r.Deregister(ctx, "svc", "127.0.0.2:9001"); err != nil {
		t.Fatal(err)
	}
	if got := serverAddrs(e, "svc"); !slices.Equal(got, []string{"127.0.0.2:9000", "127.0.0.3:9000"}) {
		t.Fatalf("after removing one, server holds %v", got)
	}
	for _, a := range []string{"127.0.0.2:9000", "127.0.0.3:9000"} {
		if err := r.Deregister(ctx, "svc", a); err != nil {
			t.Fatal(err)
		}
	}
	if got := serverAddrs(e, "svc"); len(got) != 0 {
		t.Fatalf("after removing all, server holds %v", got)
	}
}

// A restart of the server (every connection dropped) loses nothing: the
// registrations come back, and watchers see the set again and go on
// getting pushes.
func TestDropConnectionsRestoresEverything(t *testing.T) {
	e := testServer(t)
	ctx := testCtx(t)
	a := e.newRegistry(t, e.config(), false)
	b := e.newRegistry(t, e.config(), false)
	for _, x := range []registry.Endpoint{ep("one", "127.0.0.2:1"), ep("one", "127.0.0.2:2"), ep("two", "127.0.0.2:3")} {
		if err := a.Register(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	w, err := b.Watch(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := []registry.Endpoint{ep("one", "127.0.0.2:1"), ep("one", "127.0.0.2:2")}
	registrytest.NextUntil(t, e.harness(), w, normalized(want))
	// The set does not change across a drop as a's own watcher sees it;
	// what is checked is that it is all back and pushes go on.

	for i := range 2 {
		if n := e.srv.DropConnections(); n < 2 {
			t.Fatalf("DropConnections dropped %d connections, want 2 or more", n)
		}
		eventuallyServer(t, e, "one", want[len(want)-2].Addr, want[len(want)-1].Addr)
		eventuallyServer(t, e, "two", "127.0.0.2:3")
		registrytest.EventuallyList(t, e.harness(), b, "one", normalized(want))
		// b's subscription is back too: it is pushed a's next change.
		more := ep("one", "127.0.0.2:"+strconv.Itoa(10+i))
		if err := a.Register(ctx, more); err != nil {
			t.Fatal(err)
		}
		if err := a.Deregister(ctx, "one", want[0].Addr); err != nil {
			t.Fatal(err)
		}
		want = append(want[1:], more)
		registrytest.NextUntil(t, e.harness(), w, normalized(want))
	}
}

// A server-requested reconnect (ConnectResetRequest) keeps the SDK's
// status RUNNING; the adapter writes everything again after it.
func TestServerRequestedReconnect(t *testing.T) {
	e := testServer(t)
	ctx := testCtx(t)
	a := e.newRegistry(t, e.config(), false)
	b := e.newRegistry(t, e.config(), false)
	want := []registry.Endpoint{ep("svc", "127.0.0.2:1"), ep("svc", "127.0.0.2:2")}
	for _, x := range want {
		if err := a.Register(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	w, err := b.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	registrytest.NextUntil(t, e.harness(), w, normalized(want))

	old := e.connsOf(a)
	if len(old) != 1 {
		t.Fatalf("connections of a: %v", old)
	}
	if err := e.srv.ResetConnection(old[0]); err != nil {
		t.Fatal(err)
	}
	// Nothing is asked of a while it switches: only the server is read.
	registrytest.Eventually(t, 10*time.Second, "a on a new connection", func() bool {
		ids := e.connsOf(a)
		return len(ids) == 1 && ids[0] != old[0]
	})
	eventuallyServer(t, e, "svc", "127.0.0.2:1", "127.0.0.2:2")
	more := ep("svc", "127.0.0.2:3")
	if err := a.Register(ctx, more); err != nil {
		t.Fatal(err)
	}
	registrytest.NextUntil(t, e.harness(), w, normalized(append(want, more)))
}

func normalized(eps []registry.Endpoint) []registry.Endpoint {
	out := make([]registry.Endpoint, 0, len(eps))
	for _, x := range eps {
		n, err := x.Normalized()
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	registry.Sort(out)
	return out
}

// While the network is gone: a watcher says ErrUnavailable, a
// registration fails and is not recorded. When it is back, what was
// registered before is restored and the watcher has the set again.
func TestOutage(t *testing.T) {
	e := testServer(t)
	ctx := testCtx(t)
	cfg := e.config()
	cfg.RequestTimeout = 500 * time.Millisecond
	a := e.newRegistry(t, cfg, true)
	b := e.newRegistry(t, e.config(), false)
	e1, e2 := ep("svc", "127.0.0.2:1"), ep("svc", "127.0.0.2:2")
	if err := a.Register(ctx, e1); err != nil {
		t.Fatal(err)
	}
	w, err := a.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	registrytest.NextUntil(t, e.harness(), w, normalized([]registry.Endpoint{e1}))

	p := e.proxyOf(a)
	p.Down()
	eventuallyServer(t, e, "svc") // the server dropped a's connection
	if _, err := w.Next(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Next during the outage = %v, want ErrUnavailable", err)
	}
	if err := a.Register(ctx, e2); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Register during the outage = %v, want ErrUnavailable", err)
	}
	if err := a.Deregister(ctx, "svc", e2.Addr); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Deregister of the failed registration = %v, want ErrNotFound", err)
	}

	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	// The set read after the outage is returned even though it is the
	// one returned before.
	got, err := w.Next(ctx)
	if err != nil || !registry.EqualSets(got, normalized([]registry.Endpoint{e1})) {
		t.Fatalf("Next after the outage = %v, %v; want [e1]", registrytest.Format(got), err)
	}
	registrytest.EventuallyList(t, e.harness(), b, "svc", normalized([]registry.Endpoint{e1}))
	if err := a.Register(ctx, e2); err != nil {
		t.Fatalf("Register after the outage: %v", err)
	}
	registrytest.NextUntil(t, e.harness(), w, normalized([]registry.Endpoint{e1, e2}))
}

// New works with nobody listening; calls fail with ErrUnavailable until
// a server is there.
func TestServerDown(t *testing.T) {
	e := testServer(t)
	ctx := testCtx(t)
	cfg := e.config()
	cfg.RequestTimeout = 200 * time.Millisecond
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.newRegistry(t, cfg, false)
	if err := r.Register(ctx, ep("svc", "127.0.0.2:1")); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Register = %v, want ErrUnavailable", err)
	}
	if _, err := r.List(ctx, "svc"); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("List = %v, want ErrUnavailable", err)
	}
	w, err := r.Watch(ctx, "svc")
	if err != nil {
		t.Fatalf("Watch = %v, want a watcher that reports the outage", err)
	}
	if _, err := w.Next(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Next = %v, want ErrUnavailable", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(ctx); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Next after Close = %v, want ErrClosed", err)
	}
}

// Instances other clients wrote: only serving ones are listed, weights
// are rounded, unusable ones are reported once each.
func TestForeignInstances(t *testing.T) {
	e := testServer(t)
	ctx := testCtx(t)
	bad := registrytest.NewMalformedCounter()
	r := e.newRegistry(t, e.config(), false, WithMalformedFunc(bad.Func))
	put := func(ip string, port uint64, weight float64, healthy, enabled bool, md map[string]string) string {
		return e.srv.PutRawInstance(e.namespace, e.group, "svc", model.Instance{
			Ip: ip, Port: port, Weight: weight, Healthy: healthy, Enable: enabled, Metadata: md,
		})
	}
	put("10.0.0.1", 80, 1.0, true, true, nil) // Java's default weight
	put("10.0.0.2", 80, 0.4, true, true, nil) // small but serving
	put("10.0.0.3", 80, 2.6, true, true, map[string]string{"a": "b"})
	put("::1", 80, 100, true, true, nil)           // IPv6
	put("10.0.0.4", 80, 100, false, true, nil)     // unhealthy
	put("10.0.0.5", 80, 100, true, false, nil)     // disabled (the server hides it)
	put("10.0.0.6", 80, 0, true, true, nil)        // weight 0: drained
	k1 := put("10.0.0.7", 0, 100, true, true, nil) // no port
	k2 := put("10.0.0.8", 80, 100, true, true, map[string]string{registry.ReservedWeightKey: "3"})
	k3 := put("10.0.0.9", 80, 20000, true, true, nil) // weight out of range
	put("not a host!", 80, 100, false, true, nil)     // bad but not serving: ignored

	want := []registry.Endpoint{
		{Service: "svc", Addr: "10.0.0.1:80", Weight: registry.DefaultWeight, Metadata: map[string]string{}},
		{Service: "svc", Addr: "10.0.0.2:80", Weight: 40, Metadata: map[string]string{}},
		{Service: "svc", Addr: "10.0.0.3:80", Weight: 260, Metadata: map[string]string{"a": "b"}},
		{Service: "svc", Addr: "[::1]:80", Weight: registry.MaxWeight, Metadata: map[string]string{}},
	}
	registry.Sort(want)
	got, err := r.List(ctx, "svc")
	if err != nil || !registry.EqualSets(got, want) {
		t.Fatalf("List = %s, %v\nwant %s", registrytest.Format(got), err, registrytest.Format(want))
	}
	w, err := r.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := w.Next(ctx); err != nil || !registry.EqualSets(got, want) {
		t.Fatalf("Next = %s, %v", registrytest.Format(got), err)
	}
	if _, err := r.List(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	keys := bad.Keys("svc")
	wantKeys := []string{k1, k2, k3}
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("reported %v, want each of %v once", keys, wantKeys)
	}
}

func TestCanonicalPort(t *testing.T) {
	e := testServer(t)
	ctx := testCtx(t)
	r := e.newRegistry(t, e.config(), false)
	if err := r.Register(ctx, registry.Endpoint{Service: "svc", Addr: "127.0.0.2:0080"}); err != nil {
		t.Fatal(err)
	}
	got, err := r.List(ctx, "svc")
	if err != nil || len(got) != 1 || got[0].Addr != "127.0.0.2:80" {
		t.Fatalf("List = %v, %v; want 127.0.0.2:80", got, err)
	}
	if err := r.Deregister(ctx, "svc", "127.0.0.2:0080"); err != nil {
		t.Fatalf("Deregister as written: %v", err)
	}
}

// The SDK's process-wide logger is the Registry's while it is open, and
// no longer once it is closed.
func TestSDKLoggerDetached(t *testing.T) {
	e := testServer(t)
	r := e.newRegistry(t, e.config(), false)
	if logger.GetLogger() != logger.Logger(r.sdkLog) {
		t.Fatalf("SDK logger = %T, want the Registry's", logger.GetLogger())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if logger.GetLogger() == logger.Logger(r.sdkLog) {
		t.Fatal("SDK logger still the closed Registry's")
	}
	logger.Error("dropped, not sent to a closed test's logger")
}

package agent

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// remote registers two instances of svc as other hosts would: one behind
// its sidecar, one plain.
func (e *env) remote(svc string) {
	e.t.Helper()
	ctx := context.Background()
	for _, ep := range []registry.Endpoint{
		{Service: svc, Addr: "10.0.0.2:20000", Metadata: map[string]string{MetaMesh: "true", MetaPort: "8080", MetaProtocol: "http", MetaHealthPort: "7703"}},
		{Service: svc, Addr: "10.0.0.3:9000"},
	} {
		if err := e.other.Register(ctx, ep); err != nil {
			e.t.Fatal(err)
		}
	}
}

var realAddrs = []string{"10.0.0.2:8080", "10.0.0.3:9000"}

func TestSubscribeRewriteAndFallback(t *testing.T) {
	e := newEnv(t, nil)
	e.remote("greeter")
	ans := e.answer("greeter", "real endpoints", func(a Answer) bool { return len(a.Endpoints) == 2 })
	if ans.Mesh || ans.Governance.Mesh || ans.Governance.Retries != nil || !slices.Equal(addrs(ans.Endpoints), realAddrs) || !slices.Equal(addrs(ans.Fallback), realAddrs) {
		t.Fatalf("answer without sidecar = %+v", ans)
	}

	sc := e.startSidecar()
	egress := e.a.Status().Subscriptions[0].EgressPort
	ans = e.answer("greeter", "egress endpoint", func(a Answer) bool { return a.Mesh })
	if got := addrs(ans.Endpoints); !slices.Equal(got, []string{"127.0.0.1:" + strconv.Itoa(egress)}) {
		t.Errorf("mesh endpoints = %v", got)
	}
	if !slices.Equal(addrs(ans.Fallback), realAddrs) {
		t.Errorf("fallback = %v", ans.Fallback)
	}
	if g := ans.Governance; !g.Mesh || g.Retries == nil || *g.Retries != 0 || g.TimeoutMS == nil || *g.TimeoutMS != 3000 {
		t.Errorf("governance = %+v", g)
	}
	// The snapshot the sidecar got carries the cluster, bypass addresses included.
	snap := sc.snapshot()
	if len(snap.Clusters) != 1 || len(snap.Clusters[0].Endpoints) != 2 {
		t.Fatalf("snapshot clusters = %v", snap.Clusters)
	}
	meshEp, plainEp := snap.Clusters[0].Endpoints[0], snap.Clusters[0].Endpoints[1]
	if !meshEp.Mesh || meshEp.AppAddr != "10.0.0.2:8080" || meshEp.HealthPort != 7703 || plainEp.Mesh || plainEp.AppAddr != "10.0.0.3:9000" {
		t.Errorf("cluster endpoints = %v", snap.Clusters[0].Endpoints)
	}
	if snap.Clusters[0].Protocol != sidecarpb.Protocol_PROTOCOL_TCP {
		t.Errorf("mixed instances: protocol %v, want the default tcp", snap.Clusters[0].Protocol)
	}

	// A waiter blocked on the mesh answer is woken by the fallback.
	got := make(chan Answer, 1)
	go func() {
		a, _ := e.a.Wait(context.Background(), "greeter", ans.Revision)
		got <- a
	}()
	e.kill(sc)
	select {
	case a := <-got:
		if a.Mesh || !slices.Equal(addrs(a.Endpoints), realAddrs) || a.Revision == ans.Revision {
			t.Errorf("pushed answer = %+v", a)
		}
	case <-time.After(wait):
		t.Fatal("waiter not woken by the fallback")
	}
}

func TestWaitBlocksUntilChange(t *testing.T) {
	e := newEnv(t, nil)
	ans := e.answer("s", "empty answer", func(a Answer) bool { return true })
	if len(ans.Endpoints) != 0 {
		t.Fatalf("answer = %+v", ans)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	same, err := e.a.Wait(ctx, "s", ans.Revision)
	cancel()
	if err != nil || same.Revision != ans.Revision {
		t.Fatalf("Wait timed out = %+v, %v; want the same revision", same, err)
	}
	var wg sync.WaitGroup
	results := make([]Answer, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = e.a.Wait(context.Background(), "s", ans.Revision)
		}()
	}
	registryWaiters(t, e, "s", 5)
	if err := e.other.Register(context.Background(), registry.Endpoint{Service: "s", Addr: "10.0.0.9:1"}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, r := range results {
		if r.Revision == ans.Revision || len(r.Endpoints) != 1 {
			t.Errorf("waiter got %+v", r)
		}
	}
}

func registryWaiters(t *testing.T, e *env, svc string, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, s := range e.a.Status().Subscriptions {
			if s.Service == svc && s.Subscribers >= n {
				return
			}
		}
		<-time.After(time.Millisecond)
	}
	t.Fatalf("never saw %d waiters", n)
}

// countingRegistry counts Watch calls.
type countingRegistry struct {
	registry.Registry
	mu      sync.Mutex
	watches map[string]int
}

func (c *countingRegistry) Watch(ctx context.Context, svc string) (registry.Watcher, error) {
	c.mu.Lock()
	c.watches[svc]++
	c.mu.Unlock()
	return c.Registry.Watch(ctx, svc)
}

func TestOneWatchPerService(t *testing.T) {
	e := newEnv(t, nil)
	e.stop()
	counter := &countingRegistry{Registry: e.srv.Client(nil), watches: map[string]int{}}
	defer counter.Close()
	a, err := New(e.cfg, counter, WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Resolve(context.Background(), "shared"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.watches["shared"] != 1 {
		t.Errorf("watches = %d, want 1", counter.watches["shared"])
	}
}

func TestSubscribeStream(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Answer, 10)
	done := make(chan error, 1)
	go func() {
		done <- e.a.Subscribe(ctx, "stream", 0, func(a Answer) error { got <- a; return nil })
	}()
	first := <-got
	e.remote("stream")
	for a := range got {
		if a.Revision != first.Revision && len(a.Endpoints) == 2 {
			break
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("Subscribe returned nil after cancel")
	}
}

func TestResolveInvalid(t *testing.T) {
	e := newEnv(t, nil)
	for _, s := range []string{"", "a/b", "-x"} {
		if _, err := e.a.Resolve(context.Background(), s); err == nil {
			t.Errorf("Resolve(%q) accepted", s)
		}
	}
	if n := len(e.a.Status().Subscriptions); n != 0 {
		t.Errorf("invalid resolves subscribed %d services", n)
	}
}

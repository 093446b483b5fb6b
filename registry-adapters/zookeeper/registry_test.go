package zookeeper

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl/dubbourltest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustRegister(t *testing.T, r registry.Registry, ep registry.Endpoint) {
	t.Helper()
	if err := r.Register(testCtx(t), ep); err != nil {
		t.Fatalf("Register(%v): %v", ep, err)
	}
}

func normalized(t *testing.T, eps ...registry.Endpoint) []registry.Endpoint {
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

// TestNodeLayout checks what lands in ZooKeeper: Dubbo's path, an
// ephemeral node of the client's session under persistent parents, and the
// provider URL in its name.
func TestNodeLayout(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	svc := registrytest.Service(t)
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: "127.0.0.2:20880", Metadata: map[string]string{"version": "1.0.0"}})

	providers := env.root + "/" + svc + "/providers"
	children, _, err := env.raw.Children(providers)
	if err != nil || len(children) != 1 {
		t.Fatalf("children of %s = %v, %v; want one node", providers, children, err)
	}
	decoded, err := url.QueryUnescape(children[0])
	if err != nil {
		t.Fatal(err)
	}
	prefix := "dubbo://127.0.0.2:20880/" + svc + "?anyhost=false&interface=" + svc + "&side=provider&timestamp="
	if !strings.HasPrefix(decoded, prefix) || !strings.HasSuffix(decoded, "&version=1.0.0&weight=100") {
		t.Errorf("provider URL %q, want %s...&version=1.0.0&weight=100", decoded, prefix)
	}
	_, stat, err := env.raw.Get(providers + "/" + children[0])
	if err != nil || stat.EphemeralOwner != r.conn.SessionID() {
		t.Errorf("node owner = %v (err %v), want this client's session %x", stat, err, r.conn.SessionID())
	}
	for _, p := range []string{env.root, env.root + "/" + svc, providers} {
		if _, stat, err := env.raw.Get(p); err != nil || stat.EphemeralOwner != 0 {
			t.Errorf("%s: %v, %+v; want a persistent node", p, err, stat)
		}
	}
}

// TestReadsDubboProviders: providers written by Dubbo and dubbo-go (here
// by a raw client, exactly as they name their nodes) are endpoints;
// disabled ones are not served.
func TestReadsDubboProviders(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	const svc = "org.apache.dubbo.demo.DemoService"
	providers := env.root + "/" + svc + "/providers/"
	for _, u := range []string{
		dubbourltest.Dubbo27,
		strings.ReplaceAll(dubbourltest.Dubbo3Tri, "org.apache.dubbo.samples.api.GreetingsService", svc),
		strings.ReplaceAll(dubbourltest.Dubbo26Disabled, "com.alibaba.Svc", svc),
	} {
		if err := createAll(env.raw, providers+url.QueryEscape(u)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.List(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Addr != "192.168.1.7:20880" || got[1].Addr != "192.168.31.5:50051" {
		t.Fatalf("List = %s, want the Dubbo 2.7 and Dubbo 3 providers", registrytest.Format(got))
	}
	if got[0].Metadata["application"] != "dubbo-demo-api-provider" || got[1].Metadata["release"] != "3.2.0" {
		t.Errorf("metadata lost: %s", registrytest.Format(got))
	}
	w, err := r.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Next(testCtx(t))
	if err != nil || !registry.EqualSets(first, got) {
		t.Errorf("first Next = %s, %v; want what List returned", registrytest.Format(first), err)
	}
}

// TestWatchFollowsProvidersNode: the watcher copes with the providers node
// appearing, disappearing and appearing again (ExistsW, then ChildrenW).
func TestWatchFollowsProvidersNode(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	h := env.harness()
	svc := registrytest.Service(t)
	w, err := r.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := w.Next(testCtx(t)); err != nil || len(got) != 0 {
		t.Fatalf("first Next = %v, %v; want empty", got, err)
	}
	if ok, _, _ := env.raw.Exists(env.root + "/" + svc); ok {
		t.Fatal("the service node exists already; the test needs it missing")
	}
	node := env.root + "/" + svc + "/providers/" + url.QueryEscape("dubbo://10.0.0.1:20880/"+svc+"?interface="+svc)
	want := normalized(t, registry.Endpoint{Service: svc, Addr: "10.0.0.1:20880"})
	for range 2 {
		if err := createAll(env.raw, node); err != nil {
			t.Fatal(err)
		}
		registrytest.NextUntil(t, h, w, want)
		if err := deleteTree(env.raw, env.root+"/"+svc); err != nil {
			t.Fatal(err)
		}
		registrytest.NextUntil(t, h, w, nil)
	}
}

// TestSessionExpiryRecreatesNodes: after the server expires the session
// (which LoseSession checks by the session ID changing), the nodes are
// there again, owned by the new session, and the client's own watcher
// reported the outage once and carries on.
func TestSessionExpiryRecreatesNodes(t *testing.T) {
	env := newEnv(t)
	h := env.harness()
	r, _ := env.newRegistry(t, nil)
	other, _ := env.newRegistry(t, nil)
	svc := registrytest.Service(t)
	e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"k": "v"}}
	e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001", Weight: 3}
	mustRegister(t, r, e1)
	mustRegister(t, r, e2)
	want := normalized(t, e1, e2)
	own, err := r.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if got, err := own.Next(testCtx(t)); err != nil || !registry.EqualSets(got, want) {
		t.Fatalf("first Next = %v, %v", got, err)
	}
	before := r.conn.SessionID()

	env.loseSession(t, r)

	after := r.conn.SessionID()
	if after == before || after == 0 {
		t.Fatalf("session ID %x after LoseSession, was %x: not a new session", after, before)
	}
	registrytest.EventuallyList(t, h, other, svc, want)
	providers := env.root + "/" + svc + "/providers"
	children, _, err := env.raw.Children(providers)
	if err != nil || len(children) != 2 {
		t.Fatalf("children = %v, %v", children, err)
	}
	for _, c := range children {
		if _, stat, err := env.raw.Get(providers + "/" + c); err != nil || stat.EphemeralOwner != after {
			t.Errorf("node %s owned by %x (err %v), want the new session %x", c, stat.EphemeralOwner, err, after)
		}
	}
	// The client's own watcher: one ErrUnavailable, then the set again.
	_, err = own.Next(testCtx(t))
	if !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Next after the outage = %v, want ErrUnavailable", err)
	}
	registrytest.NextUntil(t, h, own, want)
}

// TestDisconnectSurfacesOnce: a lost connection is one ErrUnavailable from
// Next, however many reconnects fail, and the set comes back after. The
// session outlives the outage here (see TestSessionExpiryRecreatesNodes
// for the other case).
func TestDisconnectSurfacesOnce(t *testing.T) {
	env := newEnv(t)
	r, sw := env.newRegistry(t, nil, func(c *Config) { c.SessionTimeout = 30 * time.Second })
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	mustRegister(t, r, ep)
	w, err := r.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	before := r.conn.SessionID()
	var refused atomic.Int64
	sw.onRefuse(func() { refused.Add(1) })
	sw.cut()
	if _, err := w.Next(testCtx(t)); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Next after the cut = %v, want ErrUnavailable", err)
	}
	poll(t, 20*time.Second, "two failed reconnects", func() bool { return refused.Load() >= 2 })
	now, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := w.Next(now); !errors.Is(err, context.Canceled) {
		t.Errorf("Next during the same outage = %v, %v; want nothing new (context.Canceled)", got, err)
	}
	// Calls fail with ErrUnavailable meanwhile, within their context.
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := r.Register(short, registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001"}); !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Register while cut off = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if _, err := r.List(short, svc); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("List while cut off = %v, want ErrUnavailable", err)
	}

	sw.restore()
	got, err := w.Next(testCtx(t))
	if err != nil || !registry.EqualSets(got, normalized(t, ep)) {
		t.Errorf("Next after the network came back = %v, %v; want the set again", got, err)
	}
	if sid := r.conn.SessionID(); sid != before {
		t.Errorf("session changed from %x to %x: the outage was meant to be shorter than the session timeout", before, sid)
	}
}

// TestReplaceIsOneChange: registering the same address with new metadata
// swaps the node in one transaction: a watcher never sees both or none.
func TestReplaceIsOneChange(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	other, _ := env.newRegistry(t, nil)
	svc := registrytest.Service(t)
	w, err := other.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	for i, v := range []string{"1", "2", "3"} {
		ep.Metadata = map[string]string{"v": v}
		mustRegister(t, r, ep)
		for {
			got, err := w.Next(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && len(got) != 1 {
				t.Fatalf("during replacement %d a watcher saw %s", i, registrytest.Format(got))
			}
			if len(got) == 1 && got[0].Metadata["v"] == v {
				break
			}
		}
	}
	children, _, err := env.raw.Children(env.root + "/" + svc + "/providers")
	if err != nil || len(children) != 1 {
		t.Errorf("children after replacements = %v, %v; want one node", children, err)
	}
}

// TestReplaceAfterNodeLost: when the node to replace is gone (an operator
// deleted it, or the session expired and it is not restored yet), the
// transaction fails and Register creates the new node alone.
func TestReplaceAfterNodeLost(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	svc := registrytest.Service(t)
	providers := env.root + "/" + svc + "/providers"
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"v": "1"}})
	children, _, err := env.raw.Children(providers)
	if err != nil || len(children) != 1 {
		t.Fatalf("children = %v, %v", children, err)
	}
	if err := env.raw.Delete(providers+"/"+children[0], -1); err != nil {
		t.Fatal(err)
	}
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"v": "2"}}
	mustRegister(t, r, ep)
	got, err := r.List(testCtx(t), svc)
	if err != nil || !registry.EqualSets(got, normalized(t, ep)) {
		t.Errorf("List = %v, %v; want %v", got, err, ep)
	}
}

// TestMalformedOncePerNode: each bad node is reported once across List and
// watchers; one deleted and written again is a new node, reported again.
func TestMalformedOncePerNode(t *testing.T) {
	env := newEnv(t)
	counter := registrytest.NewMalformedCounter()
	r, _ := env.newRegistry(t, counter.Func)
	svc := registrytest.Service(t)
	keys := []string{env.writeMalformed(t, svc), env.writeMalformed(t, svc), env.writeMalformed(t, svc)}
	w1, err := r.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := r.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	for range 3 {
		if got, err := r.List(testCtx(t), svc); err != nil || len(got) != 0 {
			t.Fatalf("List = %v, %v; want empty", got, err)
		}
	}
	if n := counter.Count(svc); n != 3 {
		t.Fatalf("reported %d times (%v), want 3: once per node", n, counter.Keys(svc))
	}
	bad := env.root + "/" + svc + "/providers/" + keys[0]
	if err := env.raw.Delete(bad, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.List(testCtx(t), svc); err != nil {
		t.Fatal(err)
	}
	if err := createAll(env.raw, bad); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the re-created node reported", func() bool { return counter.Count(svc) == 4 })
}

// TestCloseEndsSession: Close deletes this client's nodes at once (the
// session ends) and is idempotent.
func TestCloseEndsSession(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	svc := registrytest.Service(t)
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	children, _, err := env.raw.Children(env.root + "/" + svc + "/providers")
	if err != nil || len(children) != 0 {
		t.Errorf("children right after Close = %v, %v; want none", children, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := r.Register(testCtx(t), registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Register after Close = %v, want ErrClosed", err)
	}
}

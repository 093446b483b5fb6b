package dubbo

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl/dubbourltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCore is a frontend.Core in memory: publications by service, and a
// view per service the test sets.
type fakeCore struct {
	mu    sync.Mutex
	pubs  map[string]frontend.Publication
	views map[string]frontend.View
	wake  chan struct{}
}

func newFakeCore() *fakeCore {
	return &fakeCore{pubs: map[string]frontend.Publication{}, views: map[string]frontend.View{}, wake: make(chan struct{})}
}

func (c *fakeCore) Publish(p frontend.Publication) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pubs[p.Service] = p
	return nil
}

func (c *fakeCore) Unpublish(owner, service string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pubs[service]; !ok || p.Owner != owner {
		return frontend.ErrNotHeld
	}
	delete(c.pubs, service)
	return nil
}

func (c *fakeCore) Owned(prefix string) []frontend.Publication {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []frontend.Publication
	for _, p := range c.pubs {
		if len(p.Owner) >= len(prefix) && p.Owner[:len(prefix)] == prefix {
			out = append(out, p)
		}
	}
	return out
}

func (c *fakeCore) Watch(ctx context.Context, service string, fn func(frontend.View)) error {
	var sent uint64
	for {
		c.mu.Lock()
		v, wake := c.views[service], c.wake
		c.mu.Unlock()
		if v.Revision != sent {
			sent = v.Revision
			fn(v)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *fakeCore) setView(v frontend.View) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.views[v.Service] = v
	close(c.wake)
	c.wake = make(chan struct{})
}

func (c *fakeCore) pub(service string) (frontend.Publication, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pubs[service]
	return p, ok
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		<-time.After(time.Millisecond)
	}
}

const greeter = "com.apache.dubbo.sample.basic.IGreeter"

// TestRewriterProvider: a provider node is published for its session,
// and its deletion ends the publication; a newer session's node is not
// ended by the older node's deletion.
func TestRewriterProvider(t *testing.T) {
	core := newFakeCore()
	r := NewRewriter(core, zaptest.NewLogger(t))
	defer r.Close()
	r.Start(func(string) {})
	path := "/dubbo/" + greeter + "/providers/" + url.QueryEscape(dubbourltest.DubboGo)
	r.NodeCreated(0x11, path, nil, true)
	p, ok := core.pub(greeter)
	if !ok || p.Owner != "zookeeper/0x11" || p.Host != "192.168.1.2" || p.Port != 20000 || p.Protocol != "tri" {
		t.Fatalf("publication = %+v, %v", p, ok)
	}
	// The same app, restarted: a new session registers before the old
	// one ends.
	newer := "/dubbo/" + greeter + "/providers/" + url.QueryEscape(dubbourltest.DubboGo+"&pid=2")
	r.NodeCreated(0x12, newer, nil, true)
	r.NodeDeleted(0x11, path)
	if p, ok := core.pub(greeter); !ok || p.Owner != "zookeeper/0x12" {
		t.Fatalf("after the old session's node went: %+v, %v", p, ok)
	}
	r.NodeDeleted(0x12, newer)
	if _, ok := core.pub(greeter); ok {
		t.Fatal("publication kept after its node was deleted")
	}
	// Not a provider: nothing published.
	r.NodeCreated(0x13, "/dubbo/"+greeter+"/consumers/x", nil, true)
	r.NodeCreated(0x13, "/dubbo/"+greeter+"/providers/garbage", nil, true)
	if _, ok := core.pub(greeter); ok {
		t.Fatal("a consumer node or a garbage name was published")
	}
}

// TestRewriterRestart: publications of sessions the server restored are
// kept; the others end when the server says which came back.
func TestRewriterRestart(t *testing.T) {
	core := newFakeCore()
	core.Publish(frontend.Publication{Service: "kept", Owner: "zookeeper/0x1"})
	core.Publish(frontend.Publication{Service: "gone", Owner: "zookeeper/0x2"})
	core.Publish(frontend.Publication{Service: "api", Owner: ""})
	r := NewRewriter(core, zaptest.NewLogger(t))
	defer r.Close()
	kept := "/dubbo/kept/providers/" + url.QueryEscape("dubbo://127.0.0.1:20880/kept?interface=kept")
	r.Start(func(string) {})
	r.SessionsRestored([]zookeeper.RestoredSession{{ID: 1, Ephemerals: []zookeeper.Ephemeral{{Path: kept}}}})
	if _, ok := core.pub("kept"); !ok {
		t.Error("a restored session's publication ended")
	}
	if _, ok := core.pub("gone"); ok {
		t.Error("a publication of a session that did not come back was kept")
	}
	if _, ok := core.pub("api"); !ok {
		t.Error("the API's publication ended")
	}
	r.NodeDeleted(1, kept)
	if _, ok := core.pub("kept"); ok {
		t.Error("the restored node's deletion did not end its publication")
	}
}

// TestRewriterConsumerRead: a providers directory reads as the view; a
// change of the view notifies the server for that path.
func TestRewriterConsumerRead(t *testing.T) {
	core := newFakeCore()
	r := NewRewriter(core, zaptest.NewLogger(t))
	defer r.Close()
	var mu sync.Mutex
	var changed []string
	r.Start(func(path string) {
		mu.Lock()
		changed = append(changed, path)
		mu.Unlock()
	})
	dir := "/dubbo/" + greeter + "/providers"
	if kids, ok := r.Children("/dubbo/" + greeter + "/consumers"); ok {
		t.Fatalf("consumers dir overlaid: %v", kids)
	}
	core.setView(frontend.View{Service: greeter, Revision: 1, Known: true, Mesh: true, Egress: "127.0.0.1:30000",
		Instances: []frontend.Instance{{Addr: "10.0.0.1:20000", Protocol: "tri", Weight: 100, Metadata: map[string]string{"pid": "1"}}}})
	r.Prepare(dir) // waits for the first known view
	kids, ok := r.Children(dir)
	if !ok || len(kids) != 1 {
		t.Fatalf("children = %v, %v", kids, ok)
	}
	if data, ok := r.Data(dir + "/" + kids[0]); !ok || len(data) != 0 {
		t.Errorf("Data of a shown provider = %q, %v", data, ok)
	}
	if _, ok := r.Data(dir + "/other"); ok {
		t.Error("Data of a provider not shown")
	}
	core.setView(frontend.View{Service: greeter, Revision: 2, Known: true})
	eventually(t, "the providers gone from the read", func() bool {
		kids, _ := r.Children(dir)
		return len(kids) == 0
	})
	eventually(t, "the server told of both changes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(changed) == 2 && changed[0] == dir && changed[1] == dir
	})
}

// TestRewriterNameOutOfMesh: a service name no registry takes is left
// to the plain tree, once, without a watch.
func TestRewriterNameOutOfMesh(t *testing.T) {
	core := newFakeCore()
	r := NewRewriter(core, zaptest.NewLogger(t))
	defer r.Close()
	r.Start(func(string) {})
	dir := "/dubbo/com.foo.Outer$Inner/providers"
	r.Prepare(dir) // returns at once: nothing to wait for
	if kids, ok := r.Children(dir); ok {
		t.Fatalf("overlaid: %v", kids)
	}
}

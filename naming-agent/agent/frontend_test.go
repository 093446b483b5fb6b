package agent

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestFrontendPublish: a front end's publication is the app's own record
// (its host, its metadata) with the address rewritten; it belongs to its
// owner, outlives the agent, and ends with the owner's unpublish.
func TestFrontendPublish(t *testing.T) {
	e := newEnv(t, nil)
	core := e.a.Frontend()
	pub := frontend.Publication{
		Service: "org.demo.Greeter", Host: "127.0.0.1", Port: 20880, Protocol: "tcp",
		Metadata: map[string]string{"scheme": "tri", "timeout": "3000", "side": "provider"}, Owner: "zookeeper/0x1",
	}
	if err := core.Publish(pub); err != nil {
		t.Fatal(err)
	}
	if err := core.Publish(pub); err != nil {
		t.Fatalf("the same owner again: %v", err)
	}
	pub2 := pub
	pub2.Metadata = map[string]string{"scheme": "tri", "timeout": "100"}
	if err := core.Publish(pub2); err != nil {
		t.Fatalf("the same owner replacing its record: %v", err)
	}
	other := pub
	other.Owner = "nacos/0x2"
	if err := core.Publish(other); !errors.Is(err, ErrConflict) {
		t.Fatalf("another front end's publish = %v, want a conflict", err)
	}
	if _, err := e.a.Publish(PublishRequest{Service: pub.Service, Port: 20880, Update: true}); !errors.Is(err, ErrConflict) {
		t.Fatalf("an API update of a session's publication = %v, want a conflict", err)
	}
	if _, err := e.a.Publish(PublishRequest{Service: "x", Port: 1, Host: "192.0.2.1"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a host of another machine = %v, want ErrInvalid", err)
	}
	e.registered(pub.Service, "the app's record", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == "127.0.0.1:20880" && eps[0].Metadata["timeout"] == "100" && eps[0].Metadata["scheme"] == "tri"
	})
	if err := core.Unpublish("zookeeper/0x2", pub.Service); !errors.Is(err, frontend.ErrNotHeld) {
		t.Fatalf("unpublish by another owner = %v", err)
	}

	e.stop()
	e.start()
	core = e.a.Frontend()
	owned := core.Owned("zookeeper/")
	if len(owned) != 1 || owned[0].Owner != "zookeeper/0x1" || owned[0].Host != "127.0.0.1" || owned[0].Metadata["timeout"] != "100" {
		t.Fatalf("owned after a restart = %+v", owned)
	}
	if got := core.Owned("nacos/"); len(got) != 0 {
		t.Fatalf("owned by nacos = %+v", got)
	}
	// The app restarts before its old session ends: its new session
	// takes the service over, and the old session's end changes nothing.
	newer := pub2
	newer.Owner = "zookeeper/0x3"
	if err := core.Publish(newer); err != nil {
		t.Fatalf("a newer session of the same front end: %v", err)
	}
	if err := core.Unpublish("zookeeper/0x1", pub.Service); !errors.Is(err, frontend.ErrNotHeld) {
		t.Fatalf("the old session's unpublish after the takeover = %v, want ErrNotHeld", err)
	}
	if err := core.Unpublish("zookeeper/0x3", pub.Service); err != nil {
		t.Fatal(err)
	}
	e.registered(pub.Service, "gone", none)
}

// TestFrontendWatch: the view carries each instance's own metadata, its
// real address, the mesh state and the egress, and changes with any of
// them, metadata included (the answer does not show metadata).
func TestFrontendWatch(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var views []frontend.View
	done := make(chan error, 1)
	go func() {
		done <- e.a.Frontend().Watch(ctx, "svc", func(v frontend.View) {
			mu.Lock()
			views = append(views, v)
			mu.Unlock()
		})
	}()
	last := func() frontend.View {
		mu.Lock()
		defer mu.Unlock()
		if len(views) == 0 {
			return frontend.View{}
		}
		return views[len(views)-1]
	}
	waitView := func(what string, cond func(frontend.View) bool) frontend.View {
		t.Helper()
		registrytest.Eventually(t, wait, what, func() bool { return cond(last()) })
		return last()
	}
	waitView("known and empty", func(v frontend.View) bool { return v.Known && len(v.Instances) == 0 })

	// A remote instance registered through its sidecar.
	ep := registry.Endpoint{Service: "svc", Addr: "127.0.0.9:20001", Metadata: map[string]string{
		"version": "1", MetaMesh: "true", MetaPort: "8080", MetaProtocol: "tcp",
	}}
	e.other.Register(context.Background(), ep)
	v := waitView("the instance", func(v frontend.View) bool { return len(v.Instances) == 1 })
	if in := v.Instances[0]; in.Addr != "127.0.0.9:8080" || in.Metadata["version"] != "1" || len(in.Metadata) != 1 || v.Mesh {
		t.Fatalf("view = %+v (want the real address, the app's metadata only, no mesh without a sidecar)", v)
	}
	rev := v.Revision
	ep.Metadata["version"] = "2"
	e.other.Register(context.Background(), ep)
	v = waitView("the new metadata", func(v frontend.View) bool {
		return len(v.Instances) == 1 && v.Instances[0].Metadata["version"] == "2"
	})
	if v.Revision <= rev {
		t.Fatalf("revision %d after %d", v.Revision, rev)
	}

	e.startSidecar()
	v = waitView("the mesh", func(v frontend.View) bool { return v.Mesh })
	if v.Egress == "" || len(v.Instances) != 1 {
		t.Fatalf("mesh view = %+v", v)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v after cancel", err)
	}
}

package etcd

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// TestEndpointsLayout: etcd's own naming/endpoints manager registers
// through the front end (a publication on its lease, not a key in the
// upstream), and its watch channel, which is what grpc-go's resolver
// runs on, reads the agent's view: the egress while the mesh carries the
// service, the instances otherwise, each change as events.
func TestEndpointsLayout(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	em, err := endpoints.NewManager(f.app, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.app.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.AddEndpoint(ctx, "greeter/127.0.0.1:7001", endpoints.Endpoint{Addr: "127.0.0.1:7001", Metadata: map[string]string{"zone": "a"}}, clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	poll(t, "the publication", func() bool { _, ok := f.core.Pub("greeter"); return ok })
	p, _ := f.core.Pub("greeter")
	if p.Host != "127.0.0.1" || p.Port != 7001 || p.Metadata["zone"] != "a" || p.Owner != "etcd/greeter/127.0.0.1:7001" {
		t.Fatalf("publication %+v", p)
	}
	up := client(t, f.upstream)
	if g, _ := up.Get(ctx, "greeter/", clientv3.WithPrefix()); g.Count != 0 {
		t.Fatalf("the app's key reached the upstream as it is: %v", g.Kvs)
	}
	if g, _ := f.app.Get(ctx, "greeter/127.0.0.1:7001"); g.Count != 1 || g.Kvs[0].Lease != int64(l.ID) {
		t.Fatalf("the app's own key read back: %v", g.Kvs)
	}

	f.core.SetView(frontend.View{Service: "greeter", Known: true, Mesh: true, Egress: "127.0.0.1:9001",
		Instances: []frontend.Instance{{Addr: "10.0.0.2:7001", Metadata: map[string]string{"zone": "a"}}, {Addr: "10.0.0.3:7001"}}})
	wc, err := em.NewWatchChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func(want ...string) {
		t.Helper()
		select {
		case ups := <-wc:
			var got []string
			for _, u := range ups {
				got = append(got, strconv.Itoa(int(u.Op))+" "+u.Endpoint.Addr)
			}
			if len(got) != len(want) {
				t.Fatalf("updates %q, want %q", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("updates %q, want %q", got, want)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no update, want %q", want)
		}
	}
	next("0 127.0.0.1:9001")
	f.core.SetView(frontend.View{Service: "greeter", Known: true, Mesh: false,
		Instances: []frontend.Instance{{Addr: "10.0.0.2:7001"}, {Addr: "10.0.0.3:7001"}}})
	next("0 10.0.0.2:7001", "0 10.0.0.3:7001", "1 ")

	// A Range and a watch from its revision + 1 agree.
	g, err := f.app.Get(ctx, "greeter/", clientv3.WithPrefix())
	if err != nil || g.Count != 2 || string(g.Kvs[0].Key) != "greeter/10.0.0.2:7001" {
		t.Fatalf("range %v %v", g, err)
	}
	w := f.app.Watch(ctx, "greeter/", clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1))
	f.core.SetView(frontend.View{Service: "greeter", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.3:7001"}}})
	select {
	case wr := <-w:
		if len(wr.Events) != 1 || wr.Events[0].Type != mvccpb.DELETE || string(wr.Events[0].Kv.Key) != "greeter/10.0.0.2:7001" ||
			wr.Events[0].Kv.ModRevision <= g.Header.Revision {
			t.Fatalf("events %v", wr.Events)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event")
	}

	// The lease's end (the real etcd's) ends the publication.
	if _, err := f.app.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	poll(t, "the publication's end", func() bool { _, ok := f.core.Pub("greeter"); return !ok })
}

// TestGoZeroLayout: go-zero's publisher puts "<key>/<lease id>" =
// host:port on its lease and watches its key for deletes (putting it
// again on any); readers get host:port values.
func TestGoZeroLayout(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	l, _ := f.app.Grant(ctx, 5)
	key := "greet.rpc/" + strconv.FormatInt(int64(l.ID), 10)
	if _, err := f.app.Put(ctx, key, "127.0.0.1:8080", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	own := f.app.Watch(ctx, key, clientv3.WithFilterPut())
	poll(t, "the publication", func() bool { _, ok := f.core.Pub("greet.rpc"); return ok })
	p, _ := f.core.Pub("greet.rpc")
	if p.Port != 8080 || p.Metadata[mdLayout] != KindGoZero {
		t.Fatalf("publication %+v", p)
	}
	f.core.SetView(frontend.View{Service: "greet.rpc", Known: true, Mesh: true, Egress: "127.0.0.1:9002",
		Instances: []frontend.Instance{{Addr: "10.0.0.2:8080", Metadata: p.Metadata}}})
	poll(t, "the egress", func() bool {
		g, _ := f.app.Get(ctx, "greet.rpc/", clientv3.WithPrefix())
		return g != nil && len(g.Kvs) == 1 && string(g.Kvs[0].Value) == "127.0.0.1:9002"
	})
	f.core.SetView(frontend.View{Service: "greet.rpc", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.2:8080", Metadata: p.Metadata}}})
	poll(t, "the instance", func() bool {
		g, _ := f.app.Get(ctx, "greet.rpc/", clientv3.WithPrefix())
		return g != nil && len(g.Kvs) == 1 && string(g.Kvs[0].Value) == "10.0.0.2:8080"
	})
	select {
	case wr := <-own:
		t.Fatalf("the app saw an event on its own key: %v", wr.Events)
	case <-time.After(200 * time.Millisecond):
	}
	f.app.Revoke(ctx, l.ID)
	poll(t, "the publication's end", func() bool { _, ok := f.core.Pub("greet.rpc"); return !ok })
}

// TestCluster: the front end is the only member, and Status names a
// version clients accept.
func TestCluster(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	ml, err := f.app.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 || ml.Members[0].Name == "" || ml.Members[0].ClientURLs[0] != "http://"+f.addr {
		t.Fatalf("MemberList %v %v", ml, err)
	}
	st, err := f.app.Status(ctx, f.addr)
	if err != nil || st.Version < "3.5" {
		t.Fatalf("Status %v %v", st, err)
	}
}

// TestKratosKitexLayouts: Kratos's and Kitex's registrations become
// publications with their fields kept, and their readers get the view
// in their own shape.
func TestKratosKitexLayouts(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	l, _ := f.app.Grant(ctx, 5)
	kratos := `{"id":"h1","name":"hello","version":"v2","metadata":{"zone":"a"},"endpoints":["http://127.0.0.1:8000","grpc://127.0.0.1:9000?isSecure=false"]}`
	if _, err := f.app.Put(ctx, "/microservices/hello/h1", kratos, clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	kitex := `{"network":"tcp","address":"127.0.0.1:8888","weight":10,"tags":{"cluster":"c1"}}`
	if _, err := f.app.Put(ctx, "kitex/registry-etcd/echo/127.0.0.1:8888", kitex, clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	poll(t, "both publications", func() bool { return f.core.Pubs() == 2 })
	kp, _ := f.core.Pub("hello")
	if kp.Port != 8000 || kp.Protocol != "http" || kp.Metadata["zone"] != "a" || kp.Metadata["kratos.version"] != "v2" {
		t.Errorf("kratos publication %+v", kp)
	}
	xp, _ := f.core.Pub("echo")
	if xp.Port != 8888 || xp.Weight != 10 || xp.Metadata["cluster"] != "c1" {
		t.Errorf("kitex publication %+v", xp)
	}
	f.core.SetView(frontend.View{Service: "hello", Known: true, Mesh: true, Egress: "127.0.0.1:9100",
		Instances: []frontend.Instance{{Addr: "10.0.0.2:8000", Metadata: kp.Metadata}}})
	f.core.SetView(frontend.View{Service: "echo", Known: true, Mesh: true, Egress: "127.0.0.1:9101",
		Instances: []frontend.Instance{{Addr: "10.0.0.2:8888", Weight: 10, Metadata: xp.Metadata}}})
	poll(t, "Kratos's reader", func() bool {
		g, _ := f.app.Get(ctx, "/microservices/hello", clientv3.WithPrefix()) // Kratos reads without the '/'
		return g != nil && len(g.Kvs) == 1 && strings.Contains(string(g.Kvs[0].Value), `"endpoints":["http://127.0.0.1:9100"]`) &&
			strings.Contains(string(g.Kvs[0].Value), `"version":"v2"`)
	})
	poll(t, "Kitex's reader", func() bool {
		g, _ := f.app.Get(ctx, "kitex/registry-etcd/echo/", clientv3.WithPrefix())
		return g != nil && len(g.Kvs) == 1 && string(g.Kvs[0].Key) == "kitex/registry-etcd/echo/127.0.0.1:9101" &&
			strings.Contains(string(g.Kvs[0].Value), `"cluster":"c1"`)
	})
	f.app.Revoke(ctx, l.ID)
	poll(t, "both ended with the lease", func() bool { return f.core.Pubs() == 0 })
}

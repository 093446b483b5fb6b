package etcd

import (
	"net"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// TestViewAcrossRestart: an app read a service through one run of the
// front end, and its etcd client resumes its watch on the next run (the
// agent restarted) from the revision it had: it gets exactly the changes
// since, the delete of the key it held included, because renderings
// live in the upstream's history.
func TestViewAcrossRestart(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	f.core.SetView(frontend.View{Service: "greeter", Known: true, Mesh: true, Egress: "127.0.0.1:9001",
		Instances: []frontend.Instance{{Addr: "10.0.0.2:7001"}}})
	var rev int64
	poll(t, "the egress", func() bool {
		g, _ := f.app.Get(ctx, "greeter/", clientv3.WithPrefix())
		rev = g.Header.Revision
		return g != nil && len(g.Kvs) == 1 && string(g.Kvs[0].Key) == "greeter/127.0.0.1:9001"
	})
	f.srv.Close()

	srv2, err := New(f.srv.cfg, f.core, client(t, f.upstream), WithHost("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv2.Serve(l)
	app2 := client(t, "http://"+l.Addr().String())
	f.core.SetView(frontend.View{Service: "greeter", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.2:7001"}}})
	w := app2.Watch(ctx, "greeter/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	got := map[string]mvccpb.Event_EventType{}
	deadline := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case wr := <-w:
			for _, e := range wr.Events {
				got[string(e.Kv.Key)] = e.Type
			}
		case <-deadline:
			t.Fatalf("events %v, want the instance's put and the egress's delete", got)
		}
	}
	if got["greeter/10.0.0.2:7001"] != mvccpb.PUT || got["greeter/127.0.0.1:9001"] != mvccpb.DELETE {
		t.Fatalf("events %v", got)
	}
	// A Range at the old revision still answers the old rendering.
	g, err := app2.Get(ctx, "greeter/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Key) != "greeter/127.0.0.1:9001" {
		t.Fatalf("range at %d: %v %v", rev, g, err)
	}
}

package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// waitPut reads w until a PUT of key, failing after guardTimeout.
func waitPut(t *testing.T, w clientv3.WatchChan, key string) {
	t.Helper()
	guard := time.After(guardTimeout)
	for {
		select {
		case wr, ok := <-w:
			if !ok || wr.Err() != nil {
				t.Fatalf("watch ended waiting for %s: %v", key, wr.Err())
			}
			for _, e := range wr.Events {
				if e.Type == mvccpb.PUT && string(e.Kv.Key) == key {
					return
				}
			}
		case <-guard:
			t.Fatalf("no PUT of %s", key)
		}
	}
}

// TestWatchFromCreation: a service watch "from now" starts at its
// creation's revision, so a rendering made while it is being attached
// (here: the views held until it is applied) comes as an event. And a
// watch from a Range's revision + 1 gets a change made in between.
func TestWatchFromCreation(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	f.core.SetView(frontend.View{Service: "race", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.1:7001"}}})
	g, err := f.app.Get(ctx, "race/", clientv3.WithPrefix())
	if err != nil || g.Count != 1 {
		t.Fatalf("range %v %v", g, err)
	}
	rs, _ := readOf(f.srv.layouts, f.srv.cfg.StatePrefix, "race/", prefixEnd("race/"))
	vs := f.srv.views
	vs.mu.Lock() // the watch's attach waits here
	v := vs.m[rs.id()]
	w := f.app.Watch(ctx, "race/", clientv3.WithPrefix()) // returns once created upstream
	f.core.SetView(frontend.View{Service: "race", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.2:7001"}}})
	poll(t, "the rendering", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		_, ok := v.hist[len(v.hist)-1].kvs["race/10.0.0.2:7001"]
		return ok
	})
	vs.mu.Unlock()
	waitPut(t, w, "race/10.0.0.2:7001")

	g, err = f.app.Get(ctx, "race/", clientv3.WithPrefix())
	if err != nil || g.Count != 1 {
		t.Fatalf("range %v %v", g, err)
	}
	f.core.SetView(frontend.View{Service: "race", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.3:7001"}}})
	poll(t, "the rendering", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		_, ok := v.hist[len(v.hist)-1].kvs["race/10.0.0.3:7001"]
		return ok
	})
	waitPut(t, f.app.Watch(ctx, "race/", clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1)), "race/10.0.0.3:7001")
}

// TestStuckAppStream: an app that stops reading its Watch stream does
// not hold up a service's rendering for the others; its stream ends
// with Unavailable (its client resumes from its last revision).
func TestStuckAppStream(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.outQueue = 4 })
	ctx := ctxT(t)
	view := func(port int) frontend.View { // about 50 KB of events per change
		v := frontend.View{Service: "slow", Known: true}
		for i := 0; i < 300; i++ {
			v.Instances = append(v.Instances, frontend.Instance{Addr: fmt.Sprintf("10.0.%d.%d:%d", i/200, i%200+1, port)})
		}
		return v
	}
	f.core.SetView(view(7000))
	// Fixed flow-control windows (no BDP growth): the stuck stream's
	// buffers fill after a few changes.
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, scancel := context.WithTimeout(ctx, guardTimeout)
	defer scancel()
	stuck, err := pb.NewWatchClient(conn).Watch(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stuck.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("slow/"), RangeEnd: []byte(prefixEnd("slow/"))}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stuck.Recv(); err != nil || !r.Created {
		t.Fatalf("create: %v %v", r, err)
	}
	w := f.app.Watch(ctx, "slow/", clientv3.WithPrefix())
	for port := 7001; port <= 7040; port++ { // far more than the stuck stream's buffers
		f.core.SetView(view(port))
		waitPut(t, w, fmt.Sprintf("slow/10.0.0.1:%d", port))
	}
	for {
		_, err := stuck.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unavailable || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the stuck stream ended with %v, want Unavailable", err)
		}
		break
	}
}

// TestWatchCapInFlight: creates sent without waiting count against
// max_watches_per_stream before they are answered, and the refusals come
// in the creates' order (clients match answers to creates by order).
func TestWatchCapInFlight(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxWatchesPerStream = 50 })
	ctx := ctxT(t)
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("/cap/%d", i)
		if i%2 == 1 {
			key = fmt.Sprintf("cap%d/", i) // a service's keys: attached to its rendering
		}
		if err := st.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte(key), RangeEnd: []byte(prefixEnd(key))}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 60; i++ {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if !r.Created || r.Canceled != (i >= 50) {
			t.Fatalf("answer %d: created %v canceled %v %q", i, r.Created, r.Canceled, r.CancelReason)
		}
	}
}

package etcd

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestBadInput: etcd's errors where it has one, the front end stays up
// and other clients see nothing.
func TestBadInput(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxWatchesPerStream = 50 })
	// No deadline for the whole test (10,000 watches under -race on a
	// loaded machine take what they take): each call has guard's
	// deadline, a hang guard and no timing assertion. Cancelled before
	// the clients close, and the front end closes first, so a failure
	// fails rather than hangs in clientv3's Close.
	base, cancel := context.WithCancel(context.Background())
	other := client(t, "http://"+f.addr)
	t.Cleanup(f.srv.Close)
	t.Cleanup(cancel)
	guard := func() context.Context {
		c, cancel := context.WithTimeout(base, guardTimeout)
		t.Cleanup(cancel)
		return c
	}
	otherW := other.Watch(base, "/other/", clientv3.WithPrefix())
	ctx := guard()
	// A 2 MiB value: the request is too large, as etcd says it.
	if _, err := f.app.Put(ctx, "/big", strings.Repeat("x", 2<<20)); err == nil || !strings.Contains(err.Error(), "too large") && !strings.Contains(err.Error(), "larger than max") {
		t.Errorf("2 MiB put: %v", err)
	}
	// A txn of 10,000 ops: the upstream's "too many operations".
	ops := make([]clientv3.Op, 10000)
	for i := range ops {
		ops[i] = clientv3.OpPut("/txn/k", "v")
	}
	if _, err := f.app.Txn(ctx).Then(ops...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Errorf("txn of 10000 ops: %v", err)
	}
	// A service key whose value does not parse (Kratos layout): kept
	// unrewritten, counted.
	if _, err := f.app.Put(ctx, "/microservices/hello/1", "{not json"); err != nil {
		t.Fatal(err)
	}
	if f.srv.Malformed.Load() != 1 || f.core.Pubs() != 0 {
		t.Errorf("malformed %d, publications %d", f.srv.Malformed.Load(), f.core.Pubs())
	}
	if g, _ := client(t, f.upstream).Get(ctx, "/microservices/hello/1"); len(g.Kvs) != 1 {
		t.Error("the malformed key did not pass through")
	}
	// Watches past the cap on one stream: etcd's "too many requests".
	wctx, wcancel := context.WithCancel(ctx)
	for i := 0; i < 50; i++ {
		f.app.Watch(wctx, "/w/"+string(rune('a'+i%26)))
	}
	w := f.app.Watch(wctx, "/w/over")
	select {
	case wr := <-w:
		if wr.Err() == nil || !strings.Contains(wr.Err().Error(), "too many requests") {
			t.Errorf("watch past the cap: %v", wr.Err())
		}
	case <-time.After(guardTimeout):
		t.Error("no answer to a watch past the cap")
	}
	wcancel()
	// 10,000 watches of a service opened and cancelled one after another
	// on one stream, while another client grants leases and puts: it
	// goes on.
	churned, rounds := churnBeside(t, base, f.app, other, 10000)
	t.Logf("10,000 watches opened and cancelled in %v; beside them %d rounds of the other client's LeaseGrant+Put, slowest %v",
		churned, rounds.n, rounds.slowest)
	ctx = guard()
	// A client gone mid-stream: the others go on.
	gone, err := clientv3.New(clientv3.Config{Endpoints: []string{f.addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gone.Watch(ctx, "/other/", clientv3.WithPrefix())
	gone.Grant(ctx, 1) // a lease that never gets a keep-alive
	gone.Close()
	if _, err := other.Put(ctx, "/other/x", "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-otherW:
		if len(wr.Events) != 1 {
			t.Errorf("other client's events %v", wr.Events)
		}
	case <-time.After(guardTimeout):
		t.Error("the other client's watch got nothing")
	}
}

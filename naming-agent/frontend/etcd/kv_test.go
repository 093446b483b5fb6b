package etcd

import (
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPassthroughEqual sends the same requests to the front end and to a
// real etcd of its own: on keys outside the layouts, the answers are
// equal, revisions included.
func TestPassthroughEqual(t *testing.T) {
	f := newFixture(t)
	direct := client(t, startEtcd(t))
	ctx := ctxT(t)
	var got [2][]string
	for i, c := range []*clientv3.Client{f.app, direct} {
		log := func(format string, args ...any) { got[i] = append(got[i], fmt.Sprintf(format, args...)) }
		kvs := func(r *clientv3.GetResponse) string {
			s := fmt.Sprint("rev=", r.Header.Revision, " count=", r.Count, " more=", r.More)
			for _, kv := range r.Kvs {
				s += fmt.Sprintf(" %s=%s(c%d m%d v%d l%v)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease != 0)
			}
			return s
		}
		p, err := c.Put(ctx, "/config/a", "1")
		log("put %v %v", err, p.Header.Revision)
		p, err = c.Put(ctx, "/config/a", "2", clientv3.WithPrevKV())
		log("put prev %v %v %s", err, p.Header.Revision, p.PrevKv.Value)
		c.Put(ctx, "/config/b", "3")
		c.Put(ctx, "/lock/x", "4")
		g, err := c.Get(ctx, "/config/", clientv3.WithPrefix())
		log("get prefix %v %s", err, kvs(g))
		g, _ = c.Get(ctx, "/config/", clientv3.WithPrefix(), clientv3.WithLimit(1))
		log("limit %s", kvs(g))
		g, _ = c.Get(ctx, "/config/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		log("count %s", kvs(g))
		g, _ = c.Get(ctx, "/config/a", clientv3.WithRev(2))
		log("rev2 %s", kvs(g))
		_, err = c.Get(ctx, "/config/a", clientv3.WithRev(1000))
		log("future %v", err)
		tr, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Version("/config/a"), "=", 2)).
			Then(clientv3.OpPut("/config/c", "5")).Else(clientv3.OpGet("/config/a")).Commit()
		log("txn %v %v %v", err, tr.Succeeded, tr.Header.Revision)
		tr, _ = c.Txn(ctx).If(clientv3.Compare(clientv3.Value("/config/a"), "=", "x")).
			Then(clientv3.OpPut("/config/c", "6")).Else(clientv3.OpGet("/config/a")).Commit()
		log("txn else %v %s", tr.Succeeded, tr.Responses[0].GetResponseRange().Kvs[0].Value)
		l, err := c.Grant(ctx, 30)
		log("grant %v %d", err, l.TTL)
		_, err = c.Put(ctx, "/lease/k", "v", clientv3.WithLease(l.ID))
		log("put lease %v", err)
		ttl, _ := c.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		log("ttl keys %q", ttl.Keys)
		c.Revoke(ctx, l.ID)
		g, _ = c.Get(ctx, "/lease/k")
		log("after revoke %s", kvs(g))
		_, err = c.Put(ctx, "/x", "v", clientv3.WithLease(12345))
		log("bad lease %v", err)
		d, err := c.Delete(ctx, "/config/", clientv3.WithPrefix(), clientv3.WithPrevKV())
		log("del %v %d %d", err, d.Deleted, len(d.PrevKvs))
		wc := c.Watch(ctx, "/config/", clientv3.WithPrefix(), clientv3.WithRev(1), clientv3.WithPrevKV())
		wr := <-wc
		for _, e := range wr.Events {
			log("event %s %s=%s m%d", e.Type, e.Kv.Key, e.Kv.Value, e.Kv.ModRevision)
		}
		_, err = c.Compact(ctx, 3)
		log("compact %v", err)
		_, err = c.Get(ctx, "/config/a", clientv3.WithRev(2))
		log("compacted %v", err)
	}
	if len(got[0]) != len(got[1]) {
		t.Fatalf("front end:\n%q\netcd:\n%q", got[0], got[1])
	}
	for i := range got[0] {
		if got[0][i] != got[1][i] {
			t.Errorf("front end: %s\n      etcd: %s", got[0][i], got[1][i])
		}
	}
	_ = mvccpb.PUT
}

package etcd_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestRegisterRightAfterLeaseLoss: a Register that finds the lease gone
// before the keeper noticed renews it itself, and every registration is
// written again, in batches when there are many.
func TestRegisterRightAfterLeaseLoss(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	log, logs := observed(t)
	r, obs := newRegistry(t, srv, etcd.WithLogger(log)), newRegistry(t, srv)
	svc := registrytest.Service(t)
	var want []registry.Endpoint
	for i := range 150 { // more than one restore batch
		ep := registry.Endpoint{Service: svc, Addr: fmt.Sprintf("127.0.0.2:%d", 10000+i)}
		mustRegister(t, r, ep)
		want = append(want, ep)
	}
	old := revokeLease(t, raw, etcd.DefaultPrefix+"/"+svc+"/127.0.0.2:10000")
	extra := registry.Endpoint{Service: svc, Addr: "127.0.0.3:1"}
	mustRegister(t, r, extra)
	if logs.FilterMessage("lease lost, renewing it before the write").Len() == 0 {
		t.Error("Register did not renew the lease itself")
	}
	want = normalized(t, append(want, extra)...)
	h := registrytest.Harness{}
	registrytest.EventuallyList(t, h, obs, svc, want)

	resp, err := raw.Get(testContext(t), etcd.DefaultPrefix+"/"+svc+"/127.0.0.3:1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get: %v %v", resp, err)
	}
	if id := resp.Kvs[0].Lease; id == 0 || id == int64(old) {
		t.Errorf("entry bound to lease %x, want a new lease (old %x)", id, old)
	}
}

// TestCloseRevokesAndKeepsForeignClient: Close revokes the lease at once
// (the entries go without waiting for the TTL) and leaves a client handed
// in with WithClient open.
func TestCloseRevokesAndKeepsForeignClient(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	cfg := testConfig(srv)
	cfg.Endpoints = nil
	cfg.LeaseTTL = time.Hour
	r, err := etcd.New(cfg, etcd.WithClient(raw))
	if err != nil {
		t.Fatal(err)
	}
	svc := registrytest.Service(t)
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"})
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	resp, err := raw.Get(testContext(t), etcd.DefaultPrefix+"/"+svc+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("the foreign client was closed: %v", err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("entries left after Close: %v", resp.Kvs)
	}
	if err := r.Register(testContext(t), registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Register after Close = %v, want ErrClosed", err)
	}
}

// TestDeregisterLeavesOthersEntry: when another client has registered the
// same address since, Deregister removes this client's registration but
// not the other's entry.
func TestDeregisterLeavesOthersEntry(t *testing.T) {
	srv := startServer(t)
	a, b := newRegistry(t, srv), newRegistry(t, srv)
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	mustRegister(t, a, ep)
	epB := ep
	epB.Metadata = map[string]string{"owner": "b"}
	mustRegister(t, b, epB)
	if err := a.Deregister(testContext(t), svc, ep.Addr); err != nil {
		t.Fatal(err)
	}
	got, err := b.List(testContext(t), svc)
	if err != nil || len(got) != 1 || got[0].Metadata["owner"] != "b" {
		t.Errorf("List = %v, %v; want b's entry", got, err)
	}
	if err := a.Deregister(testContext(t), svc, ep.Addr); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second Deregister = %v, want ErrNotFound", err)
	}
}

// TestDeregisterRemovesUnrecordedEntryOfOurLease: an entry under this
// Registry's lease that it has no record of (what a Register that timed
// out after etcd applied it leaves) is removed by Deregister, which still
// says ErrNotFound.
func TestDeregisterRemovesUnrecordedEntryOfOurLease(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	r := newRegistry(t, srv)
	svc := registrytest.Service(t)
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"})
	resp, err := raw.Get(testContext(t), etcd.DefaultPrefix+"/"+svc+"/127.0.0.2:9000")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get: %v %v", resp, err)
	}
	ghost := etcd.DefaultPrefix + "/" + svc + "/127.0.0.2:9001"
	if _, err := raw.Put(testContext(t), ghost, `{"Op":0,"Addr":"127.0.0.2:9001"}`,
		clientv3.WithLease(clientv3.LeaseID(resp.Kvs[0].Lease))); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(testContext(t), svc, "127.0.0.2:9001"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Deregister = %v, want ErrNotFound", err)
	}
	if got, err := raw.Get(testContext(t), ghost); err != nil || len(got.Kvs) != 0 {
		t.Errorf("entry still there: %v %v", got, err)
	}
}

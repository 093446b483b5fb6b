package etcd_test

import (
	"context"
	"net"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/naming/endpoints"
	etcdresolver "go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestEndpointsManagerReadsOurEntries: etcd's own endpoints manager lists
// what the adapter registered, address and metadata.
func TestEndpointsManagerReadsOurEntries(t *testing.T) {
	srv := startServer(t)
	r := newRegistry(t, srv)
	svc := registrytest.Service(t)
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Weight: 5, Metadata: map[string]string{"detour.port": "8080"}})
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: "127.0.0.3:9000"})

	em, err := endpoints.NewManager(rawClient(t, srv), etcd.DefaultPrefix+"/"+svc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := em.List(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"127.0.0.2:9000": {"detour.port": "8080", "weight": "5"},
		"127.0.0.3:9000": {"weight": "100"},
	}
	if len(got) != len(want) {
		t.Fatalf("manager lists %v, want %d entries", got, len(want))
	}
	for addr, md := range want {
		ep, ok := got[etcd.DefaultPrefix+"/"+svc+"/"+addr]
		if !ok || ep.Addr != addr {
			t.Errorf("manager lists %v, want an entry for %s", got, addr)
			continue
		}
		gmd, _ := ep.Metadata.(map[string]any)
		if len(gmd) != len(md) {
			t.Errorf("%s: metadata %v, want %v", addr, ep.Metadata, md)
		}
		for k, v := range md {
			if gmd[k] != v {
				t.Errorf("%s: metadata[%s] = %v, want %v", addr, k, gmd[k], v)
			}
		}
	}
}

// TestReadsEndpointsManagerEntries: entries written by etcd's endpoints
// manager, with any metadata, are endpoints to the adapter, not malformed
// entries.
func TestReadsEndpointsManagerEntries(t *testing.T) {
	srv := startServer(t)
	counter := registrytest.NewMalformedCounter()
	r := newRegistry(t, srv, etcd.WithMalformedFunc(counter.Func))
	svc := registrytest.Service(t)
	target := etcd.DefaultPrefix + "/" + svc
	em, err := endpoints.NewManager(rawClient(t, srv), target)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(testContext(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(testContext(t)); err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		addr string
		md   any
		want registry.Endpoint
	}{
		{"127.0.0.2:1", nil, registry.Endpoint{Weight: 100}},
		{"127.0.0.2:2", "version-2", registry.Endpoint{Weight: 100}},
		{"127.0.0.2:3", map[string]any{"zone": "a", "version": 2, "weight": 30},
			registry.Endpoint{Weight: 30, Metadata: map[string]string{"zone": "a", "version": "2"}}},
		{"127.0.0.2:4", struct{ Region string }{"eu"},
			registry.Endpoint{Weight: 100, Metadata: map[string]string{"Region": "eu"}}},
	}
	var want []registry.Endpoint
	for _, wr := range writes {
		if err := em.AddEndpoint(testContext(t), target+"/"+wr.addr, endpoints.Endpoint{Addr: wr.addr, Metadata: wr.md}); err != nil {
			t.Fatalf("AddEndpoint: %v", err)
		}
		ep := wr.want
		ep.Service, ep.Addr = svc, wr.addr
		if ep.Metadata == nil {
			ep.Metadata = map[string]string{}
		}
		want = append(want, ep)
	}
	registry.Sort(want)
	h := registrytest.Harness{}
	registrytest.NextUntil(t, h, w, want)
	registrytest.EventuallyList(t, h, r, svc, want)
	if n := counter.Count(svc); n != 0 {
		t.Errorf("%d entries reported malformed: %v", n, counter.Keys(svc))
	}
}

// TestGRPCResolverDialsOurInstances: a gRPC client using etcd's resolver
// at etcd:///PREFIX/SERVICE reaches a server the adapter registered.
func TestGRPCResolverDialsOurInstances(t *testing.T) {
	srv := startServer(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	defer func() {
		gs.Stop()
		<-served
	}()

	r := newRegistry(t, srv)
	svc := registrytest.Service(t)
	mustRegister(t, r, registry.Endpoint{Service: svc, Addr: lis.Addr().String(), Metadata: map[string]string{"detour.protocol": "grpc"}})

	builder, err := etcdresolver.NewBuilder(rawClient(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("etcd:///"+etcd.DefaultPrefix+"/"+svc,
		grpc.WithResolvers(builder), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// WaitForReady: the call waits for the resolver's first answer.
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("health check through etcd:///%s/%s: %v", etcd.DefaultPrefix, svc, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %v, want SERVING", resp.GetStatus())
	}
}

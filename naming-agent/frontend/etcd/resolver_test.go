package etcd

import (
	"context"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// TestGRPCResolver: a grpc-go client dialing etcd:///greeter with etcd's
// resolver through the front end calls the address the agent's view
// names (the egress), and moves to the instances when the view changes.
func TestGRPCResolver(t *testing.T) {
	f := newFixture(t)
	serve := func() (string, func()) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		healthpb.RegisterHealthServer(gs, health.NewServer())
		go gs.Serve(l)
		t.Cleanup(gs.Stop)
		return l.Addr().String(), gs.Stop
	}
	egress, stopEgress := serve()
	instance, _ := serve()
	f.core.SetView(frontend.View{Service: "greeter", Known: true, Mesh: true, Egress: egress,
		Instances: []frontend.Instance{{Addr: instance}}})
	rb, err := resolver.NewBuilder(f.app)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("etcd:///greeter", grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx := ctxT(t)
	callOK := func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		return err == nil
	}
	poll(t, "a call through the egress", callOK)
	// The mesh off: the resolver's watch moves the client to the
	// instance; with the egress gone, calls still succeed.
	f.core.SetView(frontend.View{Service: "greeter", Known: true, Instances: []frontend.Instance{{Addr: instance}}})
	poll(t, "the state after the view change", func() bool {
		g, _ := f.app.Get(ctx, "greeter/", clientv3.WithPrefix())
		return g != nil && len(g.Kvs) == 1 && string(g.Kvs[0].Key) == "greeter/"+instance
	})
	stopEgress()
	poll(t, "a call to the instance", callOK)
}

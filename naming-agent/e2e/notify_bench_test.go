package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/nacos"
	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// BenchmarkNotify measures registry change → app notified: an agent
// follows a mesh-off service (so answers carry the real endpoints) for
// two subscribers, a gRPC Subscribe stream and an HTTP blocking query;
// b.N times another client of the registry registers a new endpoint of
// the service, and the clock stops when the later of the two subscribers
// holds it. It reports p50-ms and p99-ms of that, and of each API alone.
// Between changes, untimed, the previous endpoint is withdrawn.
//
// etcd is an embedded server in this process; ZooKeeper is the one
// DETOUR_ZK_ADDR names (required under CI=true); Nacos is the in-repo
// test server (registry-adapters/nacos/nacostestserver, built on
// nacos-sdk-go's gRPC stubs), not a real Nacos.
func BenchmarkNotify(b *testing.B) {
	b.Run("registry=etcd", func(b *testing.B) {
		srv := startEtcd(b, b.TempDir(), freePort(b), freePort(b))
		benchNotify(b, func() registry.Registry { return etcdClient(b, srv.Endpoints()) })
	})
	b.Run("registry=zookeeper", func(b *testing.B) {
		addr := registrytest.RequireEnv(b, "DETOUR_ZK_ADDR", zkHow)
		benchNotify(b, func() registry.Registry { return zkClient(b, addr) })
	})
	b.Run("registry=nacos", func(b *testing.B) {
		srv, err := nacostestserver.Start()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { srv.Close() })
		benchNotify(b, func() registry.Registry {
			cfg := nacos.Default()
			cfg.Servers = []string{srv.Addr()}
			r, err := nacos.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			return r
		})
	})
}

func benchNotify(b *testing.B, newReg func() registry.Registry) {
	svc := fmt.Sprintf("bench.notify-%d", time.Now().UnixNano())
	off := false
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.Services = map[string]config.Service{svc: {Mesh: &off}}
	a, err := agent.New(cfg, newReg(), agent.WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	remote := newReg()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	prev := "10.1.0.0:9000"
	if err := remote.Register(ctx, registry.Endpoint{Service: svc, Addr: prev}); err != nil {
		b.Fatal(err)
	}

	client, base := serveAPI(b, a, cfg)
	grpcSub, httpSub := newTracker(), newTracker()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); followGRPC(ctx, client, svc, grpcSub.saw) }()
	go func() {
		defer wg.Done()
		followHTTP(ctx, &http.Client{}, base, svc, httpSub.saw)
	}()
	both := func(want []string, added string) (g, h time.Time) {
		var err error
		if g, err = grpcSub.waitFor(ctx, want, added); err != nil {
			b.Fatal("gRPC subscriber: ", err)
		}
		if h, err = httpSub.waitFor(ctx, want, added); err != nil {
			b.Fatal("HTTP subscriber: ", err)
		}
		return g, h
	}
	both([]string{prev}, prev)

	var all, viaGRPC, viaHTTP latencies
	b.ResetTimer()
	for i := range b.N {
		next := fmt.Sprintf("10.1.%d.%d:9000", (i+1)/250, (i+1)%250+1)
		t0 := time.Now()
		if err := remote.Register(ctx, registry.Endpoint{Service: svc, Addr: next}); err != nil {
			b.Fatal(err)
		}
		want := []string{prev, next}
		slices.Sort(want)
		g, h := both(want, next)
		b.StopTimer()
		viaGRPC, viaHTTP = append(viaGRPC, g.Sub(t0)), append(viaHTTP, h.Sub(t0))
		last := g
		if h.After(g) {
			last = h
		}
		all = append(all, last.Sub(t0))
		if err := remote.Deregister(ctx, svc, prev); err != nil {
			b.Fatal(err)
		}
		both([]string{next}, next)
		prev = next
		b.StartTimer()
	}
	b.StopTimer()
	all.report(b, "", "ms")
	viaGRPC.report(b, "grpc-", "ms")
	viaHTTP.report(b, "http-", "ms")
	b.ReportMetric(0, "ns/op") // the mean hides the tail; the percentiles say it
}

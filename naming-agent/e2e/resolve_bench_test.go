package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// BenchmarkResolve measures a resolve of an already-subscribed service,
// answered from the agent's memory, over each API: one request per
// operation, from one client, as an app that resolves before each call
// would. The registry is the in-memory Fake: it is not on this path.
// It reports resolve-p50-us and resolve-p99-us.
func BenchmarkResolve(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	srv := registrytest.NewFakeServer()
	reg, remote := srv.Client(nil), srv.Client(nil)
	b.Cleanup(func() { reg.Close(); remote.Close() })
	a, err := agent.New(cfg, reg, agent.WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	ctx := context.Background()
	const svc = "bench.resolve"
	for _, addr := range []string{"10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000"} {
		if err := remote.Register(ctx, registry.Endpoint{Service: svc, Addr: addr}); err != nil {
			b.Fatal(err)
		}
	}
	client, base := serveAPI(b, a, cfg)
	registrytest.Eventually(b, wait, "the service subscribed with its endpoints", func() bool {
		ans, err := a.Resolve(ctx, svc)
		return err == nil && len(ans.Endpoints) == 3
	})

	run := func(b *testing.B, resolve func() error) {
		for range 10 { // warm the connection
			if err := resolve(); err != nil {
				b.Fatal(err)
			}
		}
		lat := make(latencies, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if err := resolve(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		lat.report(b, "resolve-", "us")
	}
	b.Run("api=http", func(b *testing.B) {
		c := &http.Client{}
		defer c.CloseIdleConnections()
		run(b, func() error {
			_, err := httpGetAnswer(ctx, c, base+"/v1/resolve?service="+svc)
			return err
		})
	})
	b.Run("api=grpc", func(b *testing.B) {
		run(b, func() error {
			_, err := client.Resolve(ctx, &agentpb.ResolveRequest{Service: svc})
			return err
		})
	})
}

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/etcd"
)

// Shape of BenchmarkScale.
const (
	scaleEndpointsPerSvc = 10
	scaleWatchers        = 1000 // Subscribe streams on one service
	scaleWatcherConns    = 10   // gRPC connections they share
	scaleResolves        = 1000 // random resolves per run
	scaleWorkers         = 16   // concurrent resolves of the "app"
)

// BenchmarkScale runs one naming agent as a real process against an etcd
// server in this process holding N/10 services × 10 endpoints, all of
// them subscribed by the benchmark (the app). N comes from
// DETOUR_BENCH_ENDPOINTS (a comma list, default 1000). The config is the
// default (mesh on) with an egress range wide enough for every service,
// so each subscription also gets its egress port; no sidecar is
// connected, so the answers are the real endpoints (the fallback).
//
// Measured once per N (the agent starts three times):
//   - subscribe-all-s: first resolve of every service, 16 at a time, each
//     answered with its 10 endpoints;
//   - rss-MB (VmRSS) and heap-MB (go_memstats_heap_inuse_bytes) after that;
//   - startup-cache-ms: agent restarted with etcd stopped, until every
//     service resolves (from endpoints.json);
//   - startup-ms and startup-registry-ms: restarted with etcd up, until
//     every service resolves, and until every answer is confirmed by etcd.
//
// Per run: resolve-p50-us and resolve-p99-us over 1,000 HTTP resolves of
// random services, and, b.N times, one change of a service followed by
// 1,000 gRPC Subscribe streams: watchers-all-p50-ms, -p99-ms and -max-ms
// until the last stream has it.
func BenchmarkScale(b *testing.B) {
	sizes, err := scaleSizes(os.Getenv("DETOUR_BENCH_ENDPOINTS"))
	if err != nil {
		b.Fatal(err)
	}
	bin := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testbed.Build(ctx, bin, "github.com/detourmesh/detour/naming-agent/cmd/naming-agent"); err != nil {
		b.Fatal(err)
	}
	// A sub-benchmark runs once with b.N=1 and again with the real b.N:
	// the fixture outlives the first run and is dropped when N changes.
	var fx *scaleFixture
	b.Cleanup(func() {
		if fx != nil {
			fx.close()
		}
	})
	for _, n := range sizes {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			if fx != nil && fx.n != n {
				fx.close()
				fx = nil
			}
			if fx == nil {
				// Not b.TempDir: the fixture outlives this sub-benchmark's
				// cleanup, and its agent writes into the directory until
				// fx.close, which removes it.
				dir, err := os.MkdirTemp("", "detour-scale-")
				if err != nil {
					b.Fatal(err)
				}
				fx = &scaleFixture{n: n, services: n / scaleEndpointsPerSvc, bin: bin, dir: dir}
				if err := fx.setUp(); err != nil {
					b.Fatalf("N=%d: %v (agent log: %s)", n, err, fx.agentLog())
				}
			}
			fx.run(b)
		})
	}
}

func scaleSizes(env string) ([]int, error) {
	if env == "" {
		env = "1000"
	}
	var out []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < scaleEndpointsPerSvc || n%scaleEndpointsPerSvc != 0 {
			return nil, fmt.Errorf("DETOUR_BENCH_ENDPOINTS: %q: want multiples of %d", f, scaleEndpointsPerSvc)
		}
		out = append(out, n)
	}
	return out, nil
}

// run is one run of the sub-benchmark on a set-up fixture.
func (fx *scaleFixture) run(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resolves, err := fx.randomResolves(ctx)
	if err != nil {
		b.Fatal(err)
	}
	all, err := fx.watchers(ctx, b)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fx.services), "services")
	b.ReportMetric(fx.subscribeAll.Seconds(), "subscribe-all-s")
	b.ReportMetric(fx.rssMB, "rss-MB")
	b.ReportMetric(fx.heapMB, "heap-MB")
	b.ReportMetric(ms(fx.startupCache), "startup-cache-ms")
	b.ReportMetric(ms(fx.startup), "startup-ms")
	b.ReportMetric(ms(fx.startupRegistry), "startup-registry-ms")
	resolves.report(b, "resolve-", "us")
	all.report(b, "watchers-all-", "ms")
	b.ReportMetric(ms(slices.Max(all)), "watchers-all-max-ms")
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (fx *scaleFixture) randomResolves(ctx context.Context) (latencies, error) {
	c := fx.http
	lat := make(latencies, 0, scaleResolves)
	for range scaleResolves {
		u := fx.base() + "/v1/resolve?service=" + scaleService(rand.IntN(fx.services))
		t0 := time.Now()
		ans, err := httpGetAnswer(ctx, c, u)
		if err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
		if len(ans.Endpoints) != scaleEndpointsPerSvc {
			return nil, fmt.Errorf("%s: %d endpoints, want %d", u, len(ans.Endpoints), scaleEndpointsPerSvc)
		}
	}
	return lat, nil
}

// watchers opens scaleWatchers Subscribe streams on service 0 and, b.N
// times, adds an endpoint to it (dropping the previous addition in the
// same etcd transaction) and times until every stream holds it.
func (fx *scaleFixture) watchers(ctx context.Context, b *testing.B) (latencies, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	svc := scaleService(0)
	f := &fanout{want: scaleAddr(0, 0), done: make(chan struct{})}
	clients := make([]agentpb.AgentClient, scaleWatcherConns)
	for i := range clients {
		clients[i] = dialAgent(b, fx.grpcAddr)
	}
	for i := range scaleWatchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var had string
			followGRPC(ctx, clients[i%len(clients)], svc, func(addrs []string) { f.saw(addrs, &had) })
		}()
	}
	if err := f.wait(ctx); err != nil {
		return nil, fmt.Errorf("first answer on every stream: %w", err)
	}
	prefix := etcd.DefaultPrefix + "/" + svc + "/"
	var lat latencies
	prev := ""
	b.ResetTimer()
	for i := range b.N {
		next := fmt.Sprintf("10.200.%d.%d:9000", i/250, i%250+1)
		t0 := f.expect(next)
		ops := []clientv3.Op{clientv3.OpPut(prefix+next, `{"Addr":"`+next+`"}`)}
		if prev != "" {
			ops = append(ops, clientv3.OpDelete(prefix+prev))
		}
		if _, err := fx.kv.Txn(ctx).Then(ops...).Commit(); err != nil {
			return nil, err
		}
		if err := f.wait(ctx); err != nil {
			return nil, fmt.Errorf("change %d on every stream: %w", i, err)
		}
		lat = append(lat, f.lastAt().Sub(t0))
		prev = next
	}
	b.StopTimer()
	if prev != "" {
		if _, err := fx.kv.Delete(ctx, prefix+prev); err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// fanout counts the watchers whose answer holds want.
type fanout struct {
	mu   sync.Mutex
	want string
	got  int
	last time.Time
	done chan struct{}
}

// expect starts waiting for addr and returns the start time.
func (f *fanout) expect(addr string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.want, f.got, f.done = addr, 0, make(chan struct{})
	return time.Now()
}

// saw is one watcher's answer; had is that watcher's last counted want.
func (f *fanout) saw(addrs []string, had *string) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if *had == f.want {
		return
	}
	for _, a := range addrs {
		if a == f.want {
			*had = f.want
			f.got++
			f.last = now
			if f.got == scaleWatchers {
				close(f.done)
			}
			return
		}
	}
}

func (f *fanout) wait(ctx context.Context) error {
	f.mu.Lock()
	done := f.done
	f.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		return fmt.Errorf("%d of %d watchers have %s: %w", f.got, scaleWatchers, f.want, ctx.Err())
	}
}

func (f *fanout) lastAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

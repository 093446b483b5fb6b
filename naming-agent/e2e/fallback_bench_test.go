package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/api"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// Shape of the benchmark: services, and subscribers per service on each API.
const (
	benchServices   = 4
	benchGRPCSubs   = 10 // Subscribe streams per service
	benchHTTPPolls  = 10 // blocking HTTP queries per service
	benchSubsPerSvc = benchGRPCSubs + benchHTTPPolls
)

// subscriber remembers whether the last answer it received was the mesh
// one, and when that changed.
type subscriber struct {
	mu      sync.Mutex
	mesh    bool
	changed time.Time
}

func (s *subscriber) saw(mesh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mesh != mesh {
		s.mesh, s.changed = mesh, time.Now()
	}
}

func (s *subscriber) state() (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mesh, s.changed
}

// BenchmarkFallback measures the fallback time: b.N times, a sidecar
// process (a stand-in speaking the real control stream and serving a real
// /ready) is killed with SIGKILL while every service is in the mesh, and
// the clock stops when the last of benchServices × benchSubsPerSvc
// subscribers (gRPC Subscribe streams and HTTP blocking queries, as apps
// use them) has received the real endpoints. Between kills the sidecar is
// restarted and the mesh comes back (ready_threshold good probes). It
// reports p50, p99 and max in milliseconds; the target is p99 < 1000.
func BenchmarkFallback(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	srv := registrytest.NewFakeServer()
	reg, remote := srv.Client(nil), srv.Client(nil)
	defer reg.Close()
	defer remote.Close()
	a, err := agent.New(cfg, reg, agent.WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	api.RegisterGRPC(gs, a)
	go gs.Serve(gl)
	defer gs.Stop()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: api.HTTPHandler(a, cfg.API, zap.NewNop())}
	go hs.Serve(hl)
	defer hs.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := agentpb.NewAgentClient(conn)
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchServices * benchHTTPPolls}}

	var subs []*subscriber
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range benchServices {
		svc := fmt.Sprintf("bench.svc%d", i)
		if err := remote.Register(ctx, registry.Endpoint{Service: svc, Addr: fmt.Sprintf("10.0.0.%d:9000", i+1)}); err != nil {
			b.Fatal(err)
		}
		for range benchGRPCSubs {
			s := &subscriber{}
			subs = append(subs, s)
			stream, err := client.Subscribe(ctx, &agentpb.SubscribeRequest{Service: svc})
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ans, err := stream.Recv()
					if err != nil {
						return
					}
					s.saw(ans.Mesh)
				}
			}()
		}
		for range benchHTTPPolls {
			s := &subscriber{}
			subs = append(subs, s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				httpPoll(ctx, httpc, "http://"+hl.Addr().String(), svc, s)
			}()
		}
	}

	all := func(mesh bool) bool {
		for _, s := range subs {
			if m, _ := s.state(); m != mesh {
				return false
			}
		}
		return true
	}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		admin := fmt.Sprintf("127.0.0.1:%d", freePort(b))
		cmd := startStandIn(b, gl.Addr().String(), admin)
		registrytest.Eventually(b, 30*time.Second, "every subscriber on the mesh", func() bool { return all(true) })
		b.StartTimer()
		t0 := time.Now()
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			b.Fatal(err)
		}
		registrytest.Eventually(b, 30*time.Second, "every subscriber on the real endpoints", func() bool { return all(false) })
		var last time.Time
		for _, s := range subs {
			if _, at := s.state(); at.After(last) {
				last = at
			}
		}
		lat = append(lat, last.Sub(t0))
		b.StopTimer()
		cmd.Wait()
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(subs)), "subscribers")
	b.ReportMetric(0, "ns/op")
}

// httpPoll follows svc with blocking queries, as an app on the HTTP API
// does.
func httpPoll(ctx context.Context, c *http.Client, base, svc string, s *subscriber) {
	var rev uint64
	for ctx.Err() == nil {
		url := fmt.Sprintf("%s/v1/resolve?service=%s", base, svc)
		if rev != 0 {
			url += fmt.Sprintf("&revision=%d&wait=60s", rev)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			return
		}
		var ans agent.Answer
		err = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if err != nil {
			return
		}
		s.saw(ans.Mesh)
		rev = ans.Revision
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
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
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// Helpers shared by the control-plane benchmarks (notify, resolve, scale).

// serveAPI serves a's HTTP and gRPC APIs on loopback until b ends and
// returns a gRPC client and the HTTP base URL.
func serveAPI(b testing.TB, a *agent.Agent, cfg config.Config) (agentpb.AgentClient, string) {
	b.Helper()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	api.RegisterGRPC(gs, a)
	go gs.Serve(gl)
	b.Cleanup(gs.Stop)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: api.HTTPHandler(a, cfg.API, zap.NewNop())}
	go hs.Serve(hl)
	b.Cleanup(func() { hs.Close() })
	return dialAgent(b, gl.Addr().String()), "http://" + hl.Addr().String()
}

func dialAgent(b testing.TB, addr string) agentpb.AgentClient {
	b.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return agentpb.NewAgentClient(conn)
}

// tracker records when each address first appeared in a subscriber's
// answers, so a latency is read from the receive time, not from when the
// benchmark got round to looking.
type tracker struct {
	mu   sync.Mutex
	cur  []string
	seen map[string]time.Time
	wake chan struct{}
}

func newTracker() *tracker {
	return &tracker{seen: map[string]time.Time{}, wake: make(chan struct{})}
}

func (t *tracker) saw(addrs []string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur = addrs
	for _, a := range addrs {
		if _, ok := t.seen[a]; !ok {
			t.seen[a] = now
		}
	}
	close(t.wake)
	t.wake = make(chan struct{})
}

// waitFor blocks until the current answer is exactly want (sorted, as
// answers are) and returns when added was first seen.
func (t *tracker) waitFor(ctx context.Context, want []string, added string) (time.Time, error) {
	for {
		t.mu.Lock()
		if slices.Equal(t.cur, want) {
			at := t.seen[added]
			t.mu.Unlock()
			return at, nil
		}
		wake := t.wake
		t.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %v: %w", want, ctx.Err())
		}
	}
}

// followGRPC feeds a Subscribe stream's answers to f until ctx ends.
func followGRPC(ctx context.Context, c agentpb.AgentClient, svc string, f func([]string)) error {
	stream, err := c.Subscribe(ctx, &agentpb.SubscribeRequest{Service: svc})
	if err != nil {
		return err
	}
	for {
		ans, err := stream.Recv()
		if err != nil {
			return err
		}
		addrs := make([]string, 0, len(ans.Endpoints))
		for _, e := range ans.Endpoints {
			addrs = append(addrs, e.GetAddr())
		}
		f(addrs)
	}
}

// followHTTP follows svc with blocking queries, as an app on the HTTP API
// does, feeding each answer to f until ctx ends.
func followHTTP(ctx context.Context, c *http.Client, base, svc string, f func([]string)) {
	var rev uint64
	for ctx.Err() == nil {
		u := base + "/v1/resolve?service=" + url.QueryEscape(svc)
		if rev != 0 {
			u += fmt.Sprintf("&revision=%d&wait=60s", rev)
		}
		ans, err := httpGetAnswer(ctx, c, u)
		if err != nil {
			return
		}
		addrs := make([]string, 0, len(ans.Endpoints))
		for _, e := range ans.Endpoints {
			addrs = append(addrs, e.Addr)
		}
		f(addrs)
		rev = ans.Revision
	}
}

func httpGetAnswer(ctx context.Context, c *http.Client, u string) (agent.Answer, error) {
	var ans agent.Answer
	err := getJSON(ctx, c, u, &ans)
	return ans, err
}

// getJSON decodes the 200 answer of GET u into out.
func getJSON(ctx context.Context, c *http.Client, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// latencies collects one sample per benchmark operation.
type latencies []time.Duration

func (l latencies) report(b *testing.B, prefix, unit string) {
	s := slices.Clone(l)
	slices.Sort(s)
	conv := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	if unit == "us" {
		conv = func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	}
	b.ReportMetric(conv(registrytest.Percentile(s, 50)), prefix+"p50-"+unit)
	b.ReportMetric(conv(registrytest.Percentile(s, 99)), prefix+"p99-"+unit)
}

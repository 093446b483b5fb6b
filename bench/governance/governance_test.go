package governance

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/dataplane"
)

const conc = 32 // requests in flight, as the other data-path benchmarks

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func app(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func newDP(b *testing.B, cfg dataplane.Config, opts ...dataplane.Option) *dataplane.Dataplane {
	d, err := dataplane.New(cfg, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d
}

// variant is one row: what the sidecars are given.
type variant struct {
	name      string
	routes    *sidecarpb.Routes
	limit     *sidecarpb.InboundLimit
	accessLog bool
	one       bool // one instance (a limit is per instance)
}

var variants = []variant{
	{name: "plain"},
	{name: "split-2way", routes: &sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{{Name: "v1", Labels: map[string]string{"version": "1"}}, {Name: "v2", Labels: map[string]string{"version": "2"}}},
		Split:   []*sidecarpb.WeightedSubset{{Subset: "v1", Weight: 50}, {Subset: "v2", Weight: 50}},
	}},
	{name: "limit-high", limit: &sidecarpb.InboundLimit{Rps: 1e6, Burst: 10000, MaxConcurrent: 10000}},
	{name: "accesslog-full", accessLog: true},
}

// rig is an app behind two ingress sidecars (version 1 and 2) and one
// egress sidecar in front of both.
func rig(b *testing.B, v variant) string {
	target := app(b)
	cfg := dataplane.Default()
	var opts []dataplane.Option
	if v.accessLog {
		f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		cfg.AccessLogMode = "full"
		opts = append(opts, dataplane.WithAccessLogWriter(f))
	}
	var eps []*sidecarpb.Endpoint
	n := 2
	if v.one {
		n = 1
	}
	for i := 1; i <= n; i++ {
		in := freeAddr(b)
		d := newDP(b, cfg, opts...)
		snap := &sidecarpb.Snapshot{Version: 1, HostIp: "127.0.0.1", Ingress: []*sidecarpb.IngressListener{
			{Service: "web", Listen: in, Target: target, Protocol: sidecarpb.Protocol_PROTOCOL_HTTP, Limit: v.limit}}}
		if err := d.Apply(context.Background(), snap); err != nil {
			b.Fatal(err)
		}
		eps = append(eps, &sidecarpb.Endpoint{Addr: in, AppAddr: in, Weight: 100, Metadata: map[string]string{"version": strconv.Itoa(i)}})
	}
	egress := freeAddr(b)
	a := newDP(b, cfg, opts...)
	snap := &sidecarpb.Snapshot{Version: 1, HostIp: "127.0.0.1",
		Egress: []*sidecarpb.EgressListener{{Service: "web", Listen: egress, Protocol: sidecarpb.Protocol_PROTOCOL_HTTP}},
		Clusters: []*sidecarpb.Cluster{{Service: "web", Protocol: sidecarpb.Protocol_PROTOCOL_HTTP, Endpoints: eps, Routes: v.routes,
			HealthCheck: &sidecarpb.HealthCheck{Interval: durationpb.New(50 * time.Millisecond), Timeout: durationpb.New(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 3}}},
	}
	if err := a.Apply(context.Background(), snap); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		healthy := 0
		for _, e := range a.Stats().Clusters[0].Endpoints {
			if e.Health == "healthy" {
				healthy++
			}
		}
		if healthy == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("endpoints never healthy")
		}
		<-time.After(10 * time.Millisecond)
	}
	return "http://" + egress + "/hello"
}

type result struct {
	rate float64
	p99  time.Duration
}

// load sends n requests, conc at a time, and measures.
func load(b *testing.B, url string, n int) (result, []time.Duration) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				resp, err := c.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if failed.Load() > 0 {
		b.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
	return result{rate: float64(n) / el.Seconds()}, lat
}

// rounds: each variant runs b.N/rounds requests per round, the variants
// taking turns, so that a machine whose load drifts (two cores, shared)
// weighs on all alike; a variant's rate is its median round's.
const rounds = 5

// BenchmarkGovernance: each variant's req/s and p99, and both as ratios
// to the plain sidecar's in the same run (goal: >= 0.95x throughput).
func BenchmarkGovernance(b *testing.B) {
	urls := make([]string, len(variants))
	for i, v := range variants {
		urls[i] = rig(b, v)
		load(b, urls[i], 200) // warm the connections
	}
	per := max(b.N/rounds, 1)
	rates := make([][]float64, len(variants))
	lats := make([][]time.Duration, len(variants))
	b.ResetTimer()
	for range rounds {
		for i := range variants {
			r, lat := load(b, urls[i], per)
			rates[i] = append(rates[i], r.rate)
			lats[i] = append(lats[i], lat...)
		}
	}
	b.StopTimer()
	var plain result
	for i, v := range variants {
		slices.Sort(rates[i])
		slices.Sort(lats[i])
		r := result{rate: rates[i][len(rates[i])/2], p99: lats[i][len(lats[i])*99/100]}
		if i == 0 {
			plain = r
		}
		b.ReportMetric(r.rate, v.name+"-req/s")
		b.ReportMetric(float64(r.p99.Microseconds()), v.name+"-p99-us")
		if i > 0 {
			b.ReportMetric(r.rate/plain.rate, v.name+"-rate-x")
			b.ReportMetric(float64(r.p99)/float64(plain.p99), v.name+"-p99-x")
		}
	}
}

// BenchmarkRateLimit: 200 requests a second offered for 5 s (1 s in the
// quick form, b.N < 1000) against one instance's ingress limited to
// 100/s (burst 10): the rates admitted and refused (429), per second of
// the run.
func BenchmarkRateLimit(b *testing.B) {
	url := rig(b, variant{name: "limit-100", one: true, limit: &sidecarpb.InboundLimit{Rps: 100, Burst: 10}})
	secs := 1
	if b.N >= 1000 {
		secs = 5
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	start := time.Now()
	for range secs * 200 {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(url)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(ok.Load()+limited.Load())/el, "offered/s")
	b.ReportMetric(float64(ok.Load())/el, "admitted/s")
	b.ReportMetric(float64(limited.Load())/el, "429/s")
}

package dataplane

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/detourmesh/detour/api/sidecarpb"
)

type otlpCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *otlpCollector) Export(_ context.Context, r *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range r.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *otlpCollector) snapshot() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...)
}

// TestTracesAcrossBothSidecars: a request carrying the app's traceparent
// through A's egress and B's ingress gives two spans at the collector,
// in the app's trace, B's the child of A's; the app sees a traceparent
// naming B's span.
func TestTracesAcrossBothSidecars(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	col := &otlpCollector{}
	collectortrace.RegisterTraceServiceServer(srv, col)
	go srv.Serve(l)
	// A cleanup, registered before the sidecars' own: the collector outlives
	// their tracers' last upload (stopped first, the exporter kept retrying
	// past the test and goleak failed TestMain).
	t.Cleanup(srv.Stop)

	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	var mu sync.Mutex
	var seen string
	app := httpApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Get("Traceparent")
		mu.Unlock()
	}), "127.0.0.1")
	cfg := Default()
	cfg.OTLPEndpoint = l.Addr().String()
	b := &remote{ip: "127.0.0.3", port: app, ingress: freePort(t, "127.0.0.3"), health: freePort(t, "127.0.0.3")}
	b.dp = newDP(t, cfg)
	if err := b.dp.Apply(context.Background(), &sidecarpb.Snapshot{Version: 1, HostIp: b.ip, HealthListen: hp(b.ip, b.health),
		Ingress:   []*sidecarpb.IngressListener{{Service: "web", Listen: hp(b.ip, b.ingress), Target: hp("127.0.0.1", app), Protocol: H}},
		AppChecks: []*sidecarpb.AppCheck{{Service: "web", Target: hp("127.0.0.1", app), Kind: "tcp", Check: fastCheck()}}}); err != nil {
		t.Fatal(err)
	}
	a := newDP(t, cfg)
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("web", H, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b)
	const appTrace, appSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodGet, "http://"+egress+"/x", nil)
	req.Header.Set("Traceparent", "00-"+appTrace+"-"+appSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	eventually(t, "two spans exported", func() bool { return len(col.snapshot()) >= 2 })
	byName := map[string]*tracepb.Span{}
	for _, s := range col.snapshot() {
		byName[s.GetName()] = s
		if hex.EncodeToString(s.GetTraceId()) != appTrace {
			t.Fatalf("span %s in trace %x, want the app's", s.GetName(), s.GetTraceId())
		}
	}
	e, i := byName["egress web"], byName["ingress web"]
	if e == nil || i == nil || hex.EncodeToString(e.GetParentSpanId()) != appSpan || string(i.GetParentSpanId()) != string(e.GetSpanId()) {
		t.Fatalf("spans not linked: %v", col.snapshot())
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != "00-"+appTrace+"-"+hex.EncodeToString(i.GetSpanId())+"-01" {
		t.Fatalf("the app got traceparent %q", seen)
	}
}

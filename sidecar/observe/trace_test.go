package observe

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// collector is an OTLP/gRPC trace receiver (the protocol's own service).
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) Export(_ context.Context, r *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range r.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// TestTwoHopsTwoLinkedSpans: a request with the app's traceparent through
// an egress and an ingress yields two spans in the app's trace, the
// ingress's the child of the egress's, the egress's the child of the app's.
func TestTwoHopsTwoLinkedSpans(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	col := &collector{}
	collectortrace.RegisterTraceServiceServer(srv, col)
	go srv.Serve(l)
	defer srv.Stop()

	tr, err := NewTracer(l.Addr().String(), 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	o, _ := New(io.Discard, Off, 0)
	o.SetTracer(tr)
	const appTrace, appSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	h := http.Header{"Traceparent": {"00-" + appTrace + "-" + appSpan + "-01"}}
	eg := o.Listener("web", "egress").StartSpan(h, "GET", "/x")
	afterEgress := h.Get("Traceparent")
	in := o.Listener("web", "ingress").StartSpan(h, "GET", "/x")
	EndSpan(in, Request{Status: 200})
	EndSpan(eg, Request{Status: 200})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.spans) != 2 {
		t.Fatalf("%d spans, want 2", len(col.spans))
	}
	byName := map[string]*tracepb.Span{}
	for _, s := range col.spans {
		byName[s.GetName()] = s
		if hex.EncodeToString(s.GetTraceId()) != appTrace {
			t.Fatalf("span %s in trace %x, want the app's %s", s.GetName(), s.GetTraceId(), appTrace)
		}
	}
	e, i := byName["egress web"], byName["ingress web"]
	if e == nil || i == nil || hex.EncodeToString(e.GetParentSpanId()) != appSpan || string(i.GetParentSpanId()) != string(e.GetSpanId()) {
		t.Fatalf("spans not linked: %v", col.spans)
	}
	if afterEgress != "00-"+appTrace+"-"+hex.EncodeToString(e.GetSpanId())+"-01" {
		t.Fatalf("traceparent after the egress: %s", afterEgress)
	}
	if e.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || i.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Fatalf("kinds %v %v", e.GetKind(), i.GetKind())
	}
}

package observe

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracer makes a span per L7 request at each hop and exports them over
// OTLP/gRPC. The W3C traceparent the request came with is the span's
// parent (so an app's own trace id is kept), and the request leaves with
// a traceparent naming the new span (so the next hop's span is its
// child).
type Tracer struct {
	tp   *sdktrace.TracerProvider
	tr   trace.Tracer
	prop propagation.TraceContext
}

// NewTracer exports to the OTLP/gRPC collector at endpoint (host:port,
// plaintext), sampling ratio of the traces that do not come sampled or
// not from their caller (ParentBased).
func NewTracer(endpoint string, ratio float64, instance string) (*Tracer, error) {
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("trace_sample: %v, want 0-1", ratio)
	}
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("otlp_endpoint: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "detour-sidecar"),
			attribute.String("service.instance.id", instance))),
	)
	return &Tracer{tp: tp, tr: tp.Tracer("github.com/detourmesh/detour/sidecar")}, nil
}

// Shutdown exports what is left.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// SetTracer makes the observer trace (nil: not).
func (o *Observer) SetTracer(t *Tracer) { o.tracer = t }

// StartSpan starts the hop's span for a request with header h and
// rewrites h's traceparent to name it; nil when not tracing.
func (l *Listener) StartSpan(h http.Header, method, path string) trace.Span {
	if l == nil || l.o.tracer == nil {
		return nil
	}
	t := l.o.tracer
	ctx := t.prop.Extract(context.Background(), propagation.HeaderCarrier(h))
	kind := trace.SpanKindServer
	if l.direction == "egress" {
		kind = trace.SpanKindClient
	}
	_, sp := t.tr.Start(ctx, l.direction+" "+l.service, trace.WithSpanKind(kind), trace.WithAttributes(
		attribute.String("detour.service", l.service), attribute.String("detour.direction", l.direction),
		attribute.String("http.request.method", method), attribute.String("url.path", path)))
	t.prop.Inject(trace.ContextWithSpan(ctx, sp), propagation.HeaderCarrier(h))
	return sp
}

// EndSpan ends sp with the request's outcome.
func EndSpan(sp trace.Span, r Request) {
	if sp == nil {
		return
	}
	sp.SetAttributes(attribute.Int("http.response.status_code", r.Status))
	if r.GRPCStatus != "" {
		if n, err := strconv.Atoi(r.GRPCStatus); err == nil {
			sp.SetAttributes(attribute.Int("rpc.grpc.status_code", n))
		}
	}
	if r.Status >= 500 || (r.GRPCStatus != "" && r.GRPCStatus != "0") {
		sp.SetStatus(codes.Error, "")
	}
	sp.End()
}

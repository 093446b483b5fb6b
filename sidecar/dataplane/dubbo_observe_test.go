package dataplane

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/dubbo"
)

// durations counts the duration histogram's samples of one direction and
// outcome.
func durations(t *testing.T, c prometheus.Collector, direction, outcome string) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "detour_sidecar_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["direction"] == direction && labels["outcome"] == outcome {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestDubboAccessLogAndHistograms: Dubbo calls are in the duration
// histograms (egress and ingress) and the access log, as HTTP and gRPC
// requests are.
func TestDubboAccessLogAndHistograms(t *testing.T) {
	const D = sidecarpb.Protocol_PROTOCOL_DUBBO
	b := startL7Remote(t, "127.0.0.3", "greeter", D, dubboApp(t, "b", false, "127.0.0.1", "127.0.0.3"), nil)
	var log lockedBuf
	cfg := Default()
	cfg.AccessLogMode = "full"
	a := newDP(t, cfg, WithAccessLogWriter(&log))
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("greeter", D, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "greeter", b)
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := dubbo.NewReader(conn, 4<<10, dubbo.DefaultMaxBody)
	for id := range 3 {
		if h, body := dubboCall(t, conn, rd, uint64(id)); h.Status != dubbo.StatusOK || body != "b" {
			t.Fatalf("call %d: status %d from %q", id, h.Status, body)
		}
	}
	eventually(t, "3 dubbo request lines", func() bool { return strings.Count(log.String(), `"proto":"dubbo"`) == 3 })
	if !strings.Contains(log.String(), `"kind":"request","service":"greeter","direction":"egress","proto":"dubbo","remote":"`) ||
		!strings.Contains(log.String(), `"dubbo_status":20,"duration_ms":`) {
		t.Fatalf("log: %s", log.String())
	}
	if n := durations(t, a.Collector(), "egress", "2xx"); n != 3 {
		t.Fatalf("egress histogram: %d calls, want 3", n)
	}
	// The provider side's ingress (its access log is off; the histogram is always on).
	if n := durations(t, b.dp.Collector(), "ingress", "2xx"); n != 3 {
		t.Fatalf("ingress histogram: %d calls, want 3", n)
	}
}

package dataplane

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detourmesh/detour/api/sidecarpb"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestAccessLogAndHistograms: full logging writes one JSON line per
// request at L7 and per connection at L4; the duration histogram counts
// by service, direction and outcome.
func TestAccessLogAndHistograms(t *testing.T) {
	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	b := startL7Remote(t, "127.0.0.3", "web", H, httpApp(t, tagHandler("b"), "127.0.0.1", "127.0.0.3"), nil)
	var log lockedBuf
	cfg := Default()
	cfg.AccessLogMode = "full"
	a := newDP(t, cfg, WithAccessLogWriter(&log))
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("web", H, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	for _, c := range []*http.Client{{}, {Transport: &http.Transport{Protocols: h2c}}} {
		for range 3 {
			code, _ := get(t, c, "http://"+egress+"/x")
			if code != 200 {
				t.Fatal(code)
			}
		}
		c.CloseIdleConnections()
	}
	eventually(t, "6 request lines", func() bool { return strings.Count(log.String(), `"kind":"request"`) == 6 })
	if !strings.Contains(log.String(), `"direction":"egress","method":"POST","path":"/x","proto":"HTTP/1.1"`) ||
		!strings.Contains(log.String(), `"proto":"HTTP/2.0"`) || !strings.Contains(log.String(), `"status":200`) {
		t.Fatalf("log: %s", log.String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collector())
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
			n += m.GetHistogram().GetSampleCount()
		}
	}
	if n != 6 {
		t.Fatalf("histogram: %d requests, want 6", n)
	}

	// L4: one line per connection.
	tcp := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(2, tcp, clusterOf("db", sidecarpb.Protocol_PROTOCOL_TCP, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, "a connection line", func() bool {
		return strings.Contains(log.String(), `"kind":"connection","service":"db","direction":"egress"`)
	})
}

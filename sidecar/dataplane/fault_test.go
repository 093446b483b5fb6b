package dataplane

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// TestFaultInjection: off by default; a rule's abort answers its status
// without reaching the service (HTTP/1.1 and h2c), a delay is counted.
func TestFaultInjection(t *testing.T) {
	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	var reached atomic.Int64
	app := httpApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }), "127.0.0.1", "127.0.0.3")
	b := startL7Remote(t, "127.0.0.3", "web", H, app, nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("web", H, versioned(b.endpoint(), "1"))
	cl.Routes = &sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{{Name: "v1", Labels: map[string]string{"version": "1"}}},
		Rules: []*sidecarpb.RouteRule{{Name: "chaos", Match: &sidecarpb.RouteMatch{PathPrefix: "/chaos"},
			Fault: &sidecarpb.Fault{AbortPercent: 100, AbortStatus: 503}}},
		Fault: &sidecarpb.Fault{DelayPercent: 100, DelayMs: 1},
	}
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	for _, c := range []*http.Client{{}, {Transport: &http.Transport{Protocols: h2c}}} {
		for _, tc := range []struct {
			path string
			code int
		}{{"/chaos/x", 503}, {"/ok", 200}} {
			resp, err := c.Get("http://" + egress + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("%s: %d, want %d", tc.path, resp.StatusCode, tc.code)
			}
		}
		c.CloseIdleConnections()
	}
	rv := a.Stats().Clusters[0].Routes
	if reached.Load() != 2 || rv.Aborted != 2 || rv.Delayed != 2 {
		t.Fatalf("reached %d, stats %+v", reached.Load(), rv.Stats)
	}
}

package dataplane

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
)

func versioned(e *sidecarpb.Endpoint, v string) *sidecarpb.Endpoint {
	e.Metadata = map[string]string{"version": v, "zone": "z1"}
	return e
}

func canaryRoutes() *sidecarpb.Routes {
	return &sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{
			{Name: "v1", Labels: map[string]string{"version": "1"}},
			{Name: "v2", Labels: map[string]string{"version": "2"}},
			{Name: "v3", Labels: map[string]string{"version": "3"}}, // no instance
		},
		DefaultSubset: "v1",
		Split:         []*sidecarpb.WeightedSubset{{Subset: "v1", Weight: 95}, {Subset: "v2", Weight: 5}},
		Rules: []*sidecarpb.RouteRule{
			{Name: "testers", Match: &sidecarpb.RouteMatch{Headers: []*sidecarpb.HeaderMatch{{Name: "x-canary", Exact: "1"}}},
				Split: []*sidecarpb.WeightedSubset{{Subset: "v2", Weight: 100}}},
			{Name: "next", Match: &sidecarpb.RouteMatch{PathPrefix: "/next/", Headers: []*sidecarpb.HeaderMatch{{Name: "x-user", Regex: "u[0-9]+"}}},
				Split: []*sidecarpb.WeightedSubset{{Subset: "v3", Weight: 100}}},
		},
	}
}

// TestRoutesCanaryHeaderFallback: 95/5 by version within ±2 points over
// 2,000 requests, a header match routes all its requests, a subset with
// no instance falls back to the default, counted; h2c (gRPC's framing)
// matches the same way; new rules apply live.
func TestRoutesCanaryHeaderFallback(t *testing.T) {
	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	b := startL7Remote(t, "127.0.0.3", "web", H, httpApp(t, tagHandler("1"), "127.0.0.1", "127.0.0.3"), nil)
	c := startL7Remote(t, "127.0.0.4", "web", H, httpApp(t, tagHandler("2"), "127.0.0.1", "127.0.0.4"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("web", H, versioned(b.endpoint(), "1"), versioned(c.endpoint(), "2"))
	cl.Routes = canaryRoutes()
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b, c)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	send := func(c *http.Client, path string, hdr map[string]string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+egress+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 1)
		if _, err := resp.Body.Read(buf); resp.StatusCode != 200 || err != nil && buf[0] == 0 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return string(buf)
	}
	n2 := 0
	for range 2000 {
		if send(client, "/x", nil) == "2" {
			n2++
		}
	}
	if n2 < 60 || n2 > 140 { // 5 % ± 2 points of 2,000
		t.Fatalf("v2 got %d of 2000 (%.1f %%), want 5 ± 2 %%", n2, float64(n2)/20)
	}
	t.Logf("95/5 split: v2 got %d of 2000 (%.2f %%)", n2, float64(n2)/20)
	for range 200 {
		if v := send(client, "/x", map[string]string{"X-Canary": "1"}); v != "2" {
			t.Fatalf("header match went to v%s", v)
		}
	}
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	c2 := &http.Client{Transport: &http.Transport{Protocols: h2c}}
	defer c2.CloseIdleConnections()
	for range 50 {
		if v := send(c2, "/x", map[string]string{"x-canary": "1"}); v != "2" {
			t.Fatalf("h2c header match went to v%s", v)
		}
	}
	// v3 has no instance: the default, v1 (counted from here: a check
	// flapping under load may have added fallbacks above).
	before := a.Stats().Clusters[0].Routes.Fallback
	for range 100 {
		if v := send(client, "/next/a", map[string]string{"X-User": "u42"}); v != "1" {
			t.Fatalf("fallback went to v%s", v)
		}
	}
	rv := a.Stats().Clusters[0].Routes
	if rv == nil || rv.Rules[0].Matched != 250 || rv.Rules[1].Matched != 100 || rv.Fallback-before != 100 || rv.Unmatched != 2000 {
		t.Fatalf("route stats: %+v", rv)
	}

	// Back to all on v1, live.
	cl.Routes.Split = []*sidecarpb.WeightedSubset{{Subset: "v1", Weight: 100}}
	if err := a.Apply(context.Background(), egressSnap(2, egress, cl)); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if v := send(client, "/x", nil); v != "1" {
			t.Fatalf("after the shift back: v%s", v)
		}
	}
}

// TestRoutesRefused: bad rules NACK the snapshot with the field path and
// the previous rules stay.
func TestRoutesRefused(t *testing.T) {
	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("web", H, versioned(meshEP("127.0.0.3", 1, 2, 3), "1"))
	cl.Routes = canaryRoutes()
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mutate func(r *sidecarpb.Routes)
		want   string
	}{
		{func(r *sidecarpb.Routes) { r.Split[0].Subset = "v9" }, "clusters[0].routes.split[0].subset"},
		{func(r *sidecarpb.Routes) { r.Split[0].Weight = 90 }, "clusters[0].routes.split: weights sum to 95"},
		{func(r *sidecarpb.Routes) { r.Rules[1].Match.Headers[0].Regex = "u[" }, "clusters[0].routes.rules[1].match.headers[0].regex"},
		{func(r *sidecarpb.Routes) { r.DefaultSubset = "nope" }, "clusters[0].routes.default"},
		{func(r *sidecarpb.Routes) { r.Rules[0].Match = nil }, "clusters[0].routes.rules[0].match: empty"},
	} {
		bad := clusterOf("web", H, versioned(meshEP("127.0.0.3", 1, 2, 3), "1"))
		bad.Routes = canaryRoutes()
		tc.mutate(bad.Routes)
		err := a.Apply(context.Background(), egressSnap(2, egress, bad))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("want %q, got %v", tc.want, err)
		}
	}
	if a.AppliedVersion() != 1 || a.Stats().Clusters[0].Routes.InForce.Split[0].Weight != 95 {
		t.Fatal("a refused snapshot changed the rules")
	}
}

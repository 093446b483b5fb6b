package cluster

import (
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/route"
)

// TestSubsetFallback: a subset whose only endpoint goes unhealthy falls
// back to the default subset (counted), and back once it recovers; a
// metadata change moves an endpoint between subsets.
func TestSubsetFallback(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	cfg := Config{Policy: LeastRequest, Outlier: outlier.Default()}
	c := New("svc", cfg, clk.now)
	specs := []Spec{
		{Addr: "10.0.0.1:1", Weight: 1, Labels: LabelString(map[string]string{"version": "1"})},
		{Addr: "10.0.0.2:1", Weight: 1, Labels: LabelString(map[string]string{"version": "1"})},
		{Addr: "10.0.0.3:1", Weight: 1, Labels: LabelString(map[string]string{"version": "2", "zone": "b"})},
	}
	c.Update(cfg, specs)
	for _, e := range c.Endpoints() {
		c.SetHealth(e, Healthy)
	}
	tb, err := route.Compile(&sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{
			{Name: "v1", Labels: map[string]string{"version": "1"}},
			{Name: "v2b", Labels: map[string]string{"version": "2", "zone": "b"}},
		},
		DefaultSubset: "v1",
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetRoutes(tb)
	pick := func(subset string) string {
		e, err := c.PickSubset(subset, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e.Addr
	}
	for range 50 {
		if a := pick("v2b"); a != "10.0.0.3:1" {
			t.Fatalf("v2b went to %s", a)
		}
		if a := pick("v1"); a == "10.0.0.3:1" {
			t.Fatal("v1 went to v2")
		}
	}
	v2 := c.Endpoints()[2]
	c.SetHealth(v2, AppDown)
	for range 50 {
		if a := pick("v2b"); a == "10.0.0.3:1" {
			t.Fatal("an unhealthy subset was picked")
		}
	}
	if tb.Fallback.Load() != 50 {
		t.Fatalf("fallback %d, want 50", tb.Fallback.Load())
	}
	c.SetHealth(v2, Healthy)
	if a := pick("v2b"); a != "10.0.0.3:1" {
		t.Fatalf("after recovery: %s", a)
	}
	// A retry that excludes the subset's only endpoint goes elsewhere.
	if e, err := c.PickSubset("v2b", v2); err != nil || e == v2 {
		t.Fatalf("retry: %v %v", e, err)
	}
	// Metadata changed: 10.0.0.3 is now version 1, so v2b is empty.
	specs[2].Labels = LabelString(map[string]string{"version": "1"})
	c.Update(cfg, specs)
	for _, e := range c.Endpoints() {
		c.SetHealth(e, Healthy)
	}
	if pick("v2b"); tb.Fallback.Load() != 51 {
		t.Fatalf("fallback %d, want 51", tb.Fallback.Load())
	}
}

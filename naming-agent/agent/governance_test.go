package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/agentjson"
)

// TestRoutesAndLimitsLive: rules set through the agent reach the
// sidecar's snapshot (with the instances' metadata), bad ones are refused
// with the field path and change nothing, and they outlive a restart.
func TestRoutesAndLimitsLive(t *testing.T) {
	e := newEnv(t, nil)
	e.remote("greeter")
	sc := e.startSidecar()
	e.answer("greeter", "egress endpoint", func(a Answer) bool { return a.Mesh })
	r := &agentjson.Routes{
		Subsets: []agentjson.Subset{{Name: "a", Labels: map[string]string{MetaPort: "8080"}}, {Name: "b", Labels: map[string]string{"x": "y"}}},
		Default: "a",
		Split:   []agentjson.WeightedSubset{{Subset: "a", Weight: 95}, {Subset: "b", Weight: 5}},
	}
	if err := e.a.SetRoutes("greeter", r); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := sc.snapshot()
		if s != nil && len(s.Clusters) == 1 && s.Clusters[0].Routes != nil {
			if s.Clusters[0].Routes.Split[1].Weight != 5 || s.Clusters[0].Endpoints[0].Metadata[MetaPort] != "8080" {
				t.Fatalf("snapshot routes %v endpoints %v", s.Clusters[0].Routes, s.Clusters[0].Endpoints)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("routes never reached the snapshot")
		}
		<-time.After(10 * time.Millisecond)
	}
	for _, tc := range []struct {
		mutate func(*agentjson.Routes)
		want   string
	}{
		{func(r *agentjson.Routes) { r.Split[1].Weight = 6 }, "routes.split: weights sum to 101"},
		{func(r *agentjson.Routes) { r.Split[1].Subset = "c" }, `routes.split[1].subset: "c" is not a subset`},
		{func(r *agentjson.Routes) {
			r.Rules = []agentjson.RouteRule{{Match: agentjson.RouteMatch{Headers: []agentjson.HeaderMatch{{Name: "h", Regex: "("}}}, Split: r.Split}}
		}, "routes.rules[0].match.headers[0].regex"},
	} {
		bad := *r
		bad.Split = append([]agentjson.WeightedSubset(nil), r.Split...)
		tc.mutate(&bad)
		err := e.a.SetRoutes("greeter", &bad)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("want %q, got %v", tc.want, err)
		}
	}
	if got, _ := e.a.Routes("greeter"); got.Split[1].Weight != 5 {
		t.Fatalf("a refused change changed the rules: %+v", got)
	}
	if err := e.a.SetLimit("greeter", &agentjson.Limit{RPS: -1}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "limits.rps") {
		t.Fatalf("negative rps: %v", err)
	}
	if err := e.a.SetRoutes("nobody", r); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("unknown service: %v", err)
	}
	if g := loadGovernance(e.cfg.DataDir, e.a.log); g.Routes["greeter"].Split[1].Weight != 5 {
		t.Fatalf("saved: %+v", g)
	}
}

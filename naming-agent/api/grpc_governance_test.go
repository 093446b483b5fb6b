package api

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/agent"
)

func TestGRPCRoutesAndLimits(t *testing.T) {
	e := newEnv(t)
	c := agentpb.NewAgentClient(serveGRPC(t, e))
	ctx := context.Background()
	if _, err := e.a.Publish(agent.PublishRequest{Service: "kept", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	routes := &sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{{Name: "v1", Labels: map[string]string{"version": "1"}}, {Name: "v2", Labels: map[string]string{"version": "2"}}},
		Split:   []*sidecarpb.WeightedSubset{{Subset: "v1", Weight: 95}, {Subset: "v2", Weight: 5}},
	}
	if _, err := c.SetRoutes(ctx, &agentpb.SetRoutesRequest{Service: "kept", Routes: routes}); err != nil {
		t.Fatal(err)
	}
	routes.Split[1].Weight = 6
	_, err := c.SetRoutes(ctx, &agentpb.SetRoutesRequest{Service: "kept", Routes: routes})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "routes.split: weights sum to 101") {
		t.Fatalf("bad weights: %v", err)
	}
	got, err := c.GetRoutes(ctx, &agentpb.ServiceRequest{Service: "kept"})
	if err != nil || got.GetRoutes().GetSplit()[1].GetWeight() != 5 {
		t.Fatalf("get after a refused set: %v %v", got, err)
	}
	if _, err := c.SetLimits(ctx, &agentpb.SetLimitsRequest{Service: "kept", Limits: &sidecarpb.InboundLimit{Rps: 100, Burst: 10}}); err != nil {
		t.Fatal(err)
	}
	if l, err := c.GetLimits(ctx, &agentpb.ServiceRequest{Service: "kept"}); err != nil || l.GetLimits().GetRps() != 100 {
		t.Fatalf("limits: %v %v", l, err)
	}
	if _, err := c.SetLimits(ctx, &agentpb.SetLimitsRequest{Service: "kept", Limits: &sidecarpb.InboundLimit{Rps: -1}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative rps: %v", err)
	}
	if _, err := c.SetRoutes(ctx, &agentpb.SetRoutesRequest{Service: "kept"}); err != nil { // cleared
		t.Fatal(err)
	}
	if got, err := c.GetRoutes(ctx, &agentpb.ServiceRequest{Service: "kept"}); err != nil || got.GetRoutes() != nil {
		t.Fatalf("after clearing: %v %v", got, err)
	}
	routes.Split[1].Weight = 5
	if _, err := c.SetRoutes(ctx, &agentpb.SetRoutesRequest{Service: "nobody", Routes: routes}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v", err)
	}
}

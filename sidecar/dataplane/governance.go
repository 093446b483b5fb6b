package dataplane

import (
	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/route"
)

// RoutesView is a cluster's routing rules in force and their counts.
type RoutesView struct {
	InForce *sidecarpb.Routes `json:"in_force"`
	route.Stats
}

func routesView(t *route.Table) *RoutesView {
	if t == nil {
		return nil
	}
	return &RoutesView{InForce: t.Source(), Stats: t.Stats()}
}

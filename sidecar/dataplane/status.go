package dataplane

import (
	"encoding/json"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/stats"
)

func protoState(h cluster.Health) sidecarpb.EndpointHealth_State {
	switch h {
	case cluster.Healthy:
		return sidecarpb.EndpointHealth_STATE_HEALTHY
	case cluster.AppDown:
		return sidecarpb.EndpointHealth_STATE_APP_DOWN
	case cluster.SidecarDown:
		return sidecarpb.EndpointHealth_STATE_SIDECAR_DOWN
	case cluster.Bypass:
		return sidecarpb.EndpointHealth_STATE_BYPASS
	}
	return sidecarpb.EndpointHealth_STATE_UNSPECIFIED
}

// Status is the complete status report for the agent.
func (d *Dataplane) Status() *sidecarpb.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &sidecarpb.Status{AppliedVersion: d.applied.GetVersion()}
	if d.applied == nil {
		return st
	}
	up := !d.draining
	for _, l := range d.applied.GetEgress() {
		st.Listeners = append(st.Listeners, &sidecarpb.ListenerStatus{Listen: l.GetListen(), Service: l.GetService(), Up: up})
	}
	for _, l := range d.applied.GetIngress() {
		st.Listeners = append(st.Listeners, &sidecarpb.ListenerStatus{Listen: l.GetListen(), Service: l.GetService(), Up: up})
	}
	for _, name := range slices.Sorted(maps.Keys(d.clusters)) {
		cl := d.clusters[name]
		for _, e := range cl.Endpoints() {
			s := protoState(e.Health())
			if e.Outlier.Ejected() {
				s = sidecarpb.EndpointHealth_STATE_EJECTED
			}
			st.Endpoints = append(st.Endpoints, &sidecarpb.EndpointHealth{Service: name, Addr: e.Addr, State: s})
		}
	}
	for _, a := range d.applied.GetAppChecks() {
		if h, ok := d.apps[a.GetService()]; ok && h.GetTarget() == a.GetTarget() {
			st.Apps = append(st.Apps, h)
		}
	}
	return st
}

// ConfigJSON is the applied snapshot and its version, for /config.
func (d *Dataplane) ConfigJSON() ([]byte, error) {
	d.mu.Lock()
	snap := d.applied
	d.mu.Unlock()
	raw := []byte("null")
	if snap != nil {
		var err error
		if raw, err = protojson.Marshal(snap); err != nil {
			return nil, err
		}
	}
	return json.MarshalIndent(struct {
		Version  uint64          `json:"version"`
		Snapshot json.RawMessage `json:"snapshot"`
	}{snap.GetVersion(), raw}, "", "  ")
}

// StatsView is /stats.
type StatsView struct {
	Version   uint64         `json:"version"`
	Ready     bool           `json:"ready"`
	Listeners []ListenerView `json:"listeners"`
	Clusters  []ClusterView  `json:"clusters"`
	Apps      []AppView      `json:"apps"`
}

// ListenerView is one listener's counters.
type ListenerView struct {
	Listen  string `json:"listen"`
	Kind    string `json:"kind"`
	Service string `json:"service"`
	// Limit: the ingress's inbound limit and its verdicts; absent: none.
	Limit *limit.Stats `json:"limit,omitempty"`
	stats.View
}

// ClusterView is one cluster's counters and endpoints.
type ClusterView struct {
	Service   string         `json:"service"`
	Panic     bool           `json:"panic"`
	Endpoints []EndpointView `json:"endpoints"`
	// Routes: the rules in force and what each matched; absent: none.
	Routes *RoutesView `json:"routes,omitempty"`
	stats.View
}

// EndpointView is one endpoint's state and counters.
type EndpointView struct {
	Addr      string `json:"addr"`
	AppAddr   string `json:"app_addr"`
	Weight    uint32 `json:"weight"`
	Health    string `json:"health"`
	Ejected   bool   `json:"ejected"`
	Ejections uint64 `json:"ejections"`
	Active    int64  `json:"active"`
	Bypassed  uint64 `json:"bypassed"`
	stats.View
}

// AppView is one stage-1 result.
type AppView struct {
	Service string `json:"service"`
	Target  string `json:"target"`
	Healthy bool   `json:"healthy"`
	Reason  string `json:"reason,omitempty"`
}

// Stats reads every counter.
func (d *Dataplane) Stats() StatsView {
	d.mu.Lock()
	v := StatsView{Version: d.applied.GetVersion(), Ready: d.applied != nil && !d.draining}
	for _, listen := range slices.Sorted(maps.Keys(d.lstats)) {
		s := d.lstats[listen]
		v.Listeners = append(v.Listeners, ListenerView{Listen: listen, Kind: s.kind, Service: s.service, View: s.c.View(), Limit: s.lim.Stats()})
	}
	var cls []*cluster.Cluster
	for _, name := range slices.Sorted(maps.Keys(d.clusters)) {
		cls = append(cls, d.clusters[name])
	}
	for _, name := range slices.Sorted(maps.Keys(d.apps)) {
		a := d.apps[name]
		v.Apps = append(v.Apps, AppView{Service: a.Service, Target: a.Target, Healthy: a.Healthy, Reason: a.Reason})
	}
	d.mu.Unlock()
	for _, cl := range cls {
		cv := ClusterView{Service: cl.Name, Panic: cl.Panicking(), View: cl.Stats.View(), Routes: routesView(cl.Routes())}
		for _, e := range cl.Endpoints() {
			cv.Endpoints = append(cv.Endpoints, EndpointView{
				Addr: e.Addr, AppAddr: e.AppAddr, Weight: e.Weight, Health: e.Health().String(),
				Ejected: e.Outlier.Ejected(), Ejections: e.Outlier.Ejections(), Active: e.Active(),
				Bypassed: e.Bypassed.Load(), View: e.Stats.View(),
			})
		}
		v.Clusters = append(v.Clusters, cv)
	}
	return v
}

package cluster

import (
	"encoding/json"
	"fmt"

	"github.com/detourmesh/detour/sidecar/route"
)

// LabelString encodes metadata for Spec.Labels (JSON, keys sorted).
func LabelString(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m) // a map of strings always encodes
	return string(b)
}

// ParseLabels undoes LabelString.
func ParseLabels(s string) map[string]string {
	if s == "" {
		return nil
	}
	var m map[string]string
	_ = json.Unmarshal([]byte(s), &m) // LabelString's own output
	return m
}

// subsets splits eps (the routable endpoints, or all of them in panic)
// by t's subsets; nil without routes.
func subsets(t *route.Table, eps []*Endpoint) map[string]*pickSet {
	if t == nil {
		return nil
	}
	out := make(map[string]*pickSet, len(t.Subsets))
	for name, labels := range t.Subsets {
		s := &pickSet{}
		for _, e := range eps {
			if hasLabels(e.Meta, labels) {
				s.eps = append(s.eps, e)
			}
		}
		s.weigh()
		out[name] = s
	}
	return out
}

func hasLabels(meta, labels map[string]string) bool {
	for k, v := range labels {
		if mv, ok := meta[k]; !ok || mv != v {
			return false
		}
	}
	return true
}

// SetRoutes sets the routing rules (nil: none) and rebuilds the subsets.
func (c *Cluster) SetRoutes(t *route.Table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.routes.Store(t)
	c.rebuildLocked()
}

// Routes returns the rules in force; nil when none.
func (c *Cluster) Routes() *route.Table { return c.routes.Load() }

// PickSubset chooses an endpoint of subset (every endpoint for ""), not
// exclude if another can be had. A subset with no routable endpoint
// falls back to the routes' default subset, else to every endpoint, and
// is counted in the routes' Fallback. A retry that finds no other
// endpoint in the subset may go to another outside it.
func (c *Cluster) PickSubset(subset string, exclude *Endpoint) (*Endpoint, error) {
	s := c.refresh()
	if subset == "" {
		return c.pickIn(s, exclude)
	}
	t := c.routes.Load()
	ss := s.subsets[subset]
	if ss == nil || len(ss.eps) == 0 {
		if t != nil {
			t.Fallback.Add(1)
		}
		ss = nil
		if t != nil && t.Default != "" && t.Default != subset {
			ss = s.subsets[t.Default]
		}
		if ss == nil || len(ss.eps) == 0 {
			return c.pickIn(s, exclude)
		}
	}
	e, err := c.pickIn(ss, exclude)
	if err != nil && exclude != nil {
		return c.pickIn(s, exclude)
	}
	if err != nil {
		return nil, fmt.Errorf("subset %s: %w", subset, err)
	}
	return e, nil
}

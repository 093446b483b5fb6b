// Package governance turns the agent's routing rules and limits
// (api/agentjson) into the sidecar's (api/sidecarpb) and back, and
// validates them. The agent validates before it stores, the sidecar again
// before it applies, with the same code, so an error names the same field
// path (rules[0].split[1].subset) on both sides.
package governance

import (
	"fmt"
	"math"
	"regexp"

	"github.com/detourmesh/detour/api/agentjson"
	"github.com/detourmesh/detour/api/sidecarpb"
)

// Bounds on rules: enough for any real canary, small enough that a
// snapshot stays small.
const (
	MaxSubsets = 64
	MaxRules   = 64
	MaxHeaders = 16
	MaxLabels  = 16
	MaxRPS     = 1e7
	MaxBurst   = 1e7
)

// RoutesProto converts r; nil for nil.
func RoutesProto(r *agentjson.Routes) *sidecarpb.Routes {
	if r == nil {
		return nil
	}
	p := &sidecarpb.Routes{DefaultSubset: r.Default, Split: splitProto(r.Split), Fault: faultProto(r.Fault)}
	for _, s := range r.Subsets {
		p.Subsets = append(p.Subsets, &sidecarpb.Subset{Name: s.Name, Labels: s.Labels})
	}
	for _, rule := range r.Rules {
		m := &sidecarpb.RouteMatch{PathPrefix: rule.Match.PathPrefix}
		for _, h := range rule.Match.Headers {
			m.Headers = append(m.Headers, &sidecarpb.HeaderMatch{Name: h.Name, Exact: h.Exact, Regex: h.Regex})
		}
		p.Rules = append(p.Rules, &sidecarpb.RouteRule{Name: rule.Name, Match: m, Split: splitProto(rule.Split), Fault: faultProto(rule.Fault)})
	}
	return p
}

func faultProto(f *agentjson.Fault) *sidecarpb.Fault {
	if f == nil {
		return nil
	}
	return &sidecarpb.Fault{DelayPercent: f.DelayPercent, DelayMs: f.DelayMS, AbortPercent: f.AbortPercent,
		AbortStatus: f.AbortStatus, AbortGrpcStatus: f.AbortGRPCStatus}
}

// MaxDelayMS bounds an injected delay (a test's, not an outage's).
const MaxDelayMS = 60000

func validateFault(path string, f *sidecarpb.Fault) error {
	switch {
	case f == nil:
		return nil
	case f.GetDelayPercent() > 100:
		return fmt.Errorf("%s.delay_percent: %d, want 0-100", path, f.GetDelayPercent())
	case f.GetAbortPercent() > 100:
		return fmt.Errorf("%s.abort_percent: %d, want 0-100", path, f.GetAbortPercent())
	case f.GetDelayPercent() > 0 && (f.GetDelayMs() == 0 || f.GetDelayMs() > MaxDelayMS):
		return fmt.Errorf("%s.delay_ms: %d, want 1-%d", path, f.GetDelayMs(), MaxDelayMS)
	case f.GetAbortPercent() > 0 && (f.GetAbortStatus() < 200 || f.GetAbortStatus() > 599):
		return fmt.Errorf("%s.abort_status: %d, want an HTTP status 200-599", path, f.GetAbortStatus())
	case f.GetAbortGrpcStatus() > 16:
		return fmt.Errorf("%s.abort_grpc_status: %d, want a gRPC code 0-16", path, f.GetAbortGrpcStatus())
	}
	return nil
}

func splitProto(s []agentjson.WeightedSubset) []*sidecarpb.WeightedSubset {
	var out []*sidecarpb.WeightedSubset
	for _, w := range s {
		out = append(out, &sidecarpb.WeightedSubset{Subset: w.Subset, Weight: w.Weight})
	}
	return out
}

// LimitProto converts l; nil for nil or no cap at all.
func LimitProto(l *agentjson.Limit) *sidecarpb.InboundLimit {
	if l == nil || *l == (agentjson.Limit{}) {
		return nil
	}
	return &sidecarpb.InboundLimit{Rps: l.RPS, Burst: l.Burst, MaxConcurrent: l.MaxConcurrent}
}

// ValidateRoutes names the first bad field of r (nil is valid).
func ValidateRoutes(r *sidecarpb.Routes) error {
	if r == nil {
		return nil
	}
	if len(r.GetSubsets()) > MaxSubsets {
		return fmt.Errorf("subsets: %d, at most %d", len(r.GetSubsets()), MaxSubsets)
	}
	if len(r.GetRules()) > MaxRules {
		return fmt.Errorf("rules: %d, at most %d", len(r.GetRules()), MaxRules)
	}
	names := map[string]bool{}
	for i, s := range r.GetSubsets() {
		switch {
		case s.GetName() == "":
			return fmt.Errorf("subsets[%d].name: empty", i)
		case names[s.GetName()]:
			return fmt.Errorf("subsets[%d].name: %q named twice", i, s.GetName())
		case len(s.GetLabels()) == 0:
			return fmt.Errorf("subsets[%d].labels: empty (a subset of every instance is the default)", i)
		case len(s.GetLabels()) > MaxLabels:
			return fmt.Errorf("subsets[%d].labels: %d, at most %d", i, len(s.GetLabels()), MaxLabels)
		}
		for k := range s.GetLabels() {
			if k == "" {
				return fmt.Errorf("subsets[%d].labels: empty key", i)
			}
		}
		names[s.GetName()] = true
	}
	if d := r.GetDefaultSubset(); d != "" && !names[d] {
		return fmt.Errorf("default: %q is not a subset", d)
	}
	if err := validateSplit("split", r.GetSplit(), names, true); err != nil {
		return err
	}
	if err := validateFault("fault", r.GetFault()); err != nil {
		return err
	}
	for i, rule := range r.GetRules() {
		path := fmt.Sprintf("rules[%d]", i)
		m := rule.GetMatch()
		if m.GetPathPrefix() == "" && len(m.GetHeaders()) == 0 {
			return fmt.Errorf("%s.match: empty (it would match every request; use split)", path)
		}
		if len(m.GetHeaders()) > MaxHeaders {
			return fmt.Errorf("%s.match.headers: %d, at most %d", path, len(m.GetHeaders()), MaxHeaders)
		}
		for j, h := range m.GetHeaders() {
			hp := fmt.Sprintf("%s.match.headers[%d]", path, j)
			switch {
			case h.GetName() == "":
				return fmt.Errorf("%s.name: empty", hp)
			case h.GetExact() != "" && h.GetRegex() != "":
				return fmt.Errorf("%s: exact and regex both given", hp)
			}
			if h.GetRegex() != "" {
				if _, err := regexp.Compile("^(?:" + h.GetRegex() + ")$"); err != nil { // as route.Compile
					return fmt.Errorf("%s.regex: %v", hp, err)
				}
			}
		}
		if err := validateSplit(path+".split", rule.GetSplit(), names, rule.GetFault() != nil); err != nil {
			return err
		}
		if err := validateFault(path+".fault", rule.GetFault()); err != nil {
			return err
		}
	}
	return nil
}

func validateSplit(path string, split []*sidecarpb.WeightedSubset, names map[string]bool, mayBeEmpty bool) error {
	if len(split) == 0 {
		if mayBeEmpty {
			return nil
		}
		return fmt.Errorf("%s: empty", path)
	}
	sum := uint64(0)
	for i, w := range split {
		if !names[w.GetSubset()] {
			return fmt.Errorf("%s[%d].subset: %q is not a subset", path, i, w.GetSubset())
		}
		sum += uint64(w.GetWeight())
	}
	if sum != 100 {
		return fmt.Errorf("%s: weights sum to %d, not 100", path, sum)
	}
	return nil
}

// ValidateLimit names the first bad field of l (nil is valid).
func ValidateLimit(l *sidecarpb.InboundLimit) error {
	switch {
	case l == nil:
		return nil
	case math.IsNaN(l.GetRps()) || l.GetRps() < 0 || l.GetRps() > MaxRPS:
		return fmt.Errorf("rps: %v, want 0 (no cap) to %g", l.GetRps(), float64(MaxRPS))
	case l.GetBurst() > MaxBurst:
		return fmt.Errorf("burst: %d, at most %d", l.GetBurst(), int(MaxBurst))
	case l.GetBurst() > 0 && l.GetRps() == 0:
		return fmt.Errorf("burst: given without rps")
	}
	return nil
}

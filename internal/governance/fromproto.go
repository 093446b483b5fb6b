package governance

import (
	"github.com/detourmesh/detour/api/agentjson"
	"github.com/detourmesh/detour/api/sidecarpb"
)

// RoutesFromProto undoes RoutesProto; nil for nil.
func RoutesFromProto(p *sidecarpb.Routes) *agentjson.Routes {
	if p == nil {
		return nil
	}
	r := &agentjson.Routes{Default: p.GetDefaultSubset(), Split: splitFromProto(p.GetSplit()), Fault: faultFromProto(p.GetFault())}
	for _, s := range p.GetSubsets() {
		r.Subsets = append(r.Subsets, agentjson.Subset{Name: s.GetName(), Labels: s.GetLabels()})
	}
	for _, rule := range p.GetRules() {
		m := agentjson.RouteMatch{PathPrefix: rule.GetMatch().GetPathPrefix()}
		for _, h := range rule.GetMatch().GetHeaders() {
			m.Headers = append(m.Headers, agentjson.HeaderMatch{Name: h.GetName(), Exact: h.GetExact(), Regex: h.GetRegex()})
		}
		r.Rules = append(r.Rules, agentjson.RouteRule{Name: rule.GetName(), Match: m, Split: splitFromProto(rule.GetSplit()), Fault: faultFromProto(rule.GetFault())})
	}
	return r
}

func splitFromProto(ws []*sidecarpb.WeightedSubset) []agentjson.WeightedSubset {
	var out []agentjson.WeightedSubset
	for _, w := range ws {
		out = append(out, agentjson.WeightedSubset{Subset: w.GetSubset(), Weight: w.GetWeight()})
	}
	return out
}

func faultFromProto(f *sidecarpb.Fault) *agentjson.Fault {
	if f == nil {
		return nil
	}
	return &agentjson.Fault{DelayPercent: f.GetDelayPercent(), DelayMS: f.GetDelayMs(), AbortPercent: f.GetAbortPercent(),
		AbortStatus: f.GetAbortStatus(), AbortGRPCStatus: f.GetAbortGrpcStatus()}
}

// LimitFromProto undoes LimitProto; nil for nil.
func LimitFromProto(l *sidecarpb.InboundLimit) *agentjson.Limit {
	if l == nil {
		return nil
	}
	return &agentjson.Limit{RPS: l.GetRps(), Burst: l.GetBurst(), MaxConcurrent: l.GetMaxConcurrent()}
}

package agentjson

// Routes are a service's routing rules, applied by the client-side
// sidecars (PUT /v1/services/S/routes; services.S.routes in the config):
//
//	{"subsets": [{"name": "v1", "labels": {"version": "1"}},
//	             {"name": "v2", "labels": {"version": "2"}}],
//	 "default": "v1",
//	 "split": [{"subset": "v1", "weight": 95}, {"subset": "v2", "weight": 5}],
//	 "rules": [{"name": "canary-testers",
//	            "match": {"headers": [{"name": "x-canary", "exact": "1"}]},
//	            "split": [{"subset": "v2", "weight": 100}]}]}
type Routes struct {
	Subsets []Subset `json:"subsets" yaml:"subsets"`
	// Default takes the requests whose subset has no healthy instance;
	// empty: all instances.
	Default string `json:"default,omitempty" yaml:"default"`
	// Split sends the requests no rule matches; empty: all instances.
	Split []WeightedSubset `json:"split,omitempty" yaml:"split"`
	Rules []RouteRule      `json:"rules,omitempty" yaml:"rules"`
	// Fault is injected into the requests no rule matches; off unless set.
	Fault *Fault `json:"fault,omitempty" yaml:"fault"`
}

// Fault: DelayPercent of the requests wait DelayMS at the caller's
// sidecar; AbortPercent get AbortStatus (HTTP) or AbortGRPCStatus (gRPC;
// 0: UNAVAILABLE) without reaching the service.
type Fault struct {
	DelayPercent    uint32 `json:"delay_percent,omitempty" yaml:"delay_percent"`
	DelayMS         uint32 `json:"delay_ms,omitempty" yaml:"delay_ms"`
	AbortPercent    uint32 `json:"abort_percent,omitempty" yaml:"abort_percent"`
	AbortStatus     uint32 `json:"abort_status,omitempty" yaml:"abort_status"`
	AbortGRPCStatus uint32 `json:"abort_grpc_status,omitempty" yaml:"abort_grpc_status"`
}

// Subset names the instances whose registry metadata hold all labels.
type Subset struct {
	Name   string            `json:"name" yaml:"name"`
	Labels map[string]string `json:"labels" yaml:"labels"`
}

// WeightedSubset: Weight percent of the requests go to Subset.
type WeightedSubset struct {
	Subset string `json:"subset" yaml:"subset"`
	Weight uint32 `json:"weight" yaml:"weight"`
}

// RouteRule: the first rule that matches decides by its split.
type RouteRule struct {
	Name  string           `json:"name,omitempty" yaml:"name"`
	Match RouteMatch       `json:"match" yaml:"match"`
	Split []WeightedSubset `json:"split" yaml:"split"`
	Fault *Fault           `json:"fault,omitempty" yaml:"fault"`
}

// RouteMatch holds when every part given holds (HTTP headers are also
// gRPC metadata).
type RouteMatch struct {
	PathPrefix string        `json:"path_prefix,omitempty" yaml:"path_prefix"`
	Headers    []HeaderMatch `json:"headers,omitempty" yaml:"headers"`
}

// HeaderMatch: Exact value, or RE2 Regex (whole value), or present.
type HeaderMatch struct {
	Name  string `json:"name" yaml:"name"`
	Exact string `json:"exact,omitempty" yaml:"exact"`
	Regex string `json:"regex,omitempty" yaml:"regex"`
}

// Limit caps what a service's server-side sidecar admits
// (PUT /v1/services/S/limits; services.S.limits in the config).
type Limit struct {
	RPS           float64 `json:"rps,omitempty" yaml:"rps"`
	Burst         uint32  `json:"burst,omitempty" yaml:"burst"`
	MaxConcurrent uint32  `json:"max_concurrent,omitempty" yaml:"max_concurrent"`
}

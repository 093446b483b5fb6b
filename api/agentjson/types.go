// Package agentjson is the naming agent's HTTP API as Go types: the JSON
// of /v1/status, /v1/resolve and the publication the agent answers with.
// It is a leaf (standard library only), so a client such as detourctl
// decodes the API without linking the agent.
package agentjson

import "time"

// HealthSpec is how the app is checked: "tcp" (default), "http" with a
// path, or "grpc".
type HealthSpec struct {
	Type string `json:"type,omitempty"`
	Path string `json:"path,omitempty"`
}

// Publication is a published service as the agent holds it.
type Publication struct {
	Service        string            `json:"service"`
	Port           int               `json:"port"`
	Protocol       string            `json:"protocol"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Health         HealthSpec        `json:"health"`
	Host           string            `json:"host,omitempty"`
	Owner          string            `json:"owner,omitempty"`
	IngressPort    int               `json:"ingress_port"`
	RegisteredAddr string            `json:"registered_addr"`
	Mesh           bool              `json:"mesh"`
	Healthy        bool              `json:"healthy"`
	HealthSource   string            `json:"health_source"`
	RegistryError  string            `json:"registry_error,omitempty"`
}

// Endpoint is one address in an answer.
type Endpoint struct {
	Addr string `json:"addr"`
}

// Governance tells the app how to call: while the mesh carries the
// service, retry nothing and use the sidecar's timeout; otherwise (Mesh
// false, the other fields absent) use its own policy.
type Governance struct {
	Mesh      bool   `json:"mesh"`
	Retries   *int   `json:"retries,omitempty"`
	TimeoutMS *int64 `json:"timeout_ms,omitempty"`
}

// Answer is what apps resolving a service get.
type Answer struct {
	Service    string     `json:"service"`
	Mesh       bool       `json:"mesh"`
	Endpoints  []Endpoint `json:"endpoints"`
	Fallback   []Endpoint `json:"fallback"`
	Governance Governance `json:"governance"`
	Revision   uint64     `json:"revision"`
}

// Status describes the whole agent.
type Status struct {
	HostIP        string         `json:"host_ip"`
	Registry      RegistryStatus `json:"registry"`
	Sidecar       SidecarStatus  `json:"sidecar"`
	Publications  []Publication  `json:"publications"`
	Subscriptions []Subscription `json:"subscriptions"`
	MeshDisabled  []string       `json:"mesh_disabled"`
}

// RegistryStatus is the registry's health as the agent sees it.
type RegistryStatus struct {
	URL        string     `json:"url"`
	OK         bool       `json:"ok"`
	Error      string     `json:"error,omitempty"`
	ErrorSince *time.Time `json:"error_since,omitempty"`
}

// SidecarStatus is the sidecar's state.
type SidecarStatus struct {
	State             string           `json:"state"` // "up" or "down"
	Connected         bool             `json:"connected"`
	AdminAddr         string           `json:"admin_addr"`
	SentVersion       uint64           `json:"sent_version"`
	AckedVersion      uint64           `json:"acked_version"`
	LastNack          string           `json:"last_nack,omitempty"`
	ConsecutiveReady  int              `json:"consecutive_ready"`
	ConsecutiveFailed int              `json:"consecutive_failed"`
	Since             time.Time        `json:"since"`
	Listeners         []ListenerState  `json:"listeners,omitempty"`
	Endpoints         []EndpointHealth `json:"endpoints,omitempty"`
}

// ListenerState is one sidecar listener as the sidecar reports it.
type ListenerState struct {
	Listen  string `json:"listen"`
	Service string `json:"service"`
	Up      bool   `json:"up"`
	Error   string `json:"error,omitempty"`
}

// EndpointHealth is one remote endpoint's health as the sidecar reports it.
type EndpointHealth struct {
	Service string `json:"service"`
	Addr    string `json:"addr"`
	State   string `json:"state"`
}

// Subscription is a subscribed service.
type Subscription struct {
	Service     string `json:"service"`
	Answer      Answer `json:"answer"`
	Subscribers int    `json:"subscribers"`
	EgressPort  int    `json:"egress_port"`
	MeshEnabled bool   `json:"mesh_enabled"`
	Error       string `json:"error,omitempty"`
	FromCache   bool   `json:"from_cache"`
}

package dataplane

import (
	"fmt"
	"net"
	"time"

	"github.com/detourmesh/detour/sidecar/cluster"
)

// Config is the sidecar's own settings: what the snapshot does not say.
type Config struct {
	// HostIP, when set, must equal every snapshot's host_ip.
	HostIP string `yaml:"host_ip"`
	// Bypass lets traffic go straight to a remote app whose sidecar does
	// not answer while the app does.
	Bypass bool `yaml:"bypass"`
	// IdleTimeout closes L4 connections and L7 keep-alive connections
	// idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// HeadTimeout: an HTTP/1.1 request head (or h2c preface) must come
	// whole within this long of the accept (first request) or of its
	// first byte (later ones); 0: no limit. nginx's client_header_timeout
	// is 60 s.
	HeadTimeout time.Duration `yaml:"head_timeout"`
	// UpstreamIdleTimeout closes pooled L7 upstream connections idle
	// this long; shorter than the apps' own keep-alive, so the sidecar
	// is the side that closes an idle connection.
	UpstreamIdleTimeout time.Duration `yaml:"upstream_idle_timeout"`
	// ListenerMaxConnections caps each listener's open connections; one
	// more is closed at once (counted conn_limit). 0: no cap.
	ListenerMaxConnections int `yaml:"listener_max_connections"`
	// MaxConnections bounds each cluster's connections (L4) or requests
	// in flight (L7).
	MaxConnections int `yaml:"max_connections"`
	// LBPolicy: least_request (power of two choices) or round_robin.
	LBPolicy string `yaml:"lb_policy"`
	// OutlierInterval: the decay step of the ejection multiplier.
	OutlierInterval time.Duration `yaml:"outlier_interval"`
	// RetriableStatuses: L7 answers retried once on another endpoint.
	RetriableStatuses []int `yaml:"retriable_statuses"`
	// RetryBudgetPercent of the requests in flight may be retries, and
	// MinRetryConcurrency retries may always be in flight.
	RetryBudgetPercent  int `yaml:"retry_budget_percent"`
	MinRetryConcurrency int `yaml:"min_retry_concurrency"`
	// DefaultConnectTimeout and DefaultRequestTimeout apply when a
	// snapshot leaves them out.
	DefaultConnectTimeout time.Duration `yaml:"default_connect_timeout"`
	DefaultRequestTimeout time.Duration `yaml:"default_request_timeout"`
	// AccessLog is where the access log's JSON lines go: a file (appended
	// to) or "-" (stdout); AccessLogMode off, sampled (AccessLogSample of
	// the requests and connections, 0-1) or full.
	AccessLog       string  `yaml:"access_log"`
	AccessLogMode   string  `yaml:"access_log_mode"`
	AccessLogSample float64 `yaml:"access_log_sample"`
	// OTLPEndpoint, when set, is the OpenTelemetry collector (OTLP/gRPC,
	// host:port, plaintext) that gets a span per L7 request and hop;
	// TraceSample of the traces that come unsampled-by-caller are kept.
	OTLPEndpoint string  `yaml:"otlp_endpoint"`
	TraceSample  float64 `yaml:"trace_sample"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Bypass:                 true,
		IdleTimeout:            time.Hour,
		HeadTimeout:            10 * time.Second,
		UpstreamIdleTimeout:    90 * time.Second,
		ListenerMaxConnections: 10000,
		MaxConnections:         10000,
		LBPolicy:               string(cluster.LeastRequest),
		OutlierInterval:        10 * time.Second,
		RetriableStatuses:      []int{502, 503, 504},
		RetryBudgetPercent:     20,
		MinRetryConcurrency:    3,
		DefaultConnectTimeout:  time.Second,
		DefaultRequestTimeout:  15 * time.Second,
		AccessLog:              "-",
		AccessLogMode:          "off",
		AccessLogSample:        0.01,
		TraceSample:            1,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.HostIP != "" && net.ParseIP(c.HostIP) == nil:
		return fmt.Errorf("host_ip: %q is not an IP address", c.HostIP)
	case c.IdleTimeout < 0:
		return fmt.Errorf("idle_timeout: must be >= 0")
	case c.HeadTimeout < 0:
		return fmt.Errorf("head_timeout: must be >= 0")
	case c.UpstreamIdleTimeout < 0:
		return fmt.Errorf("upstream_idle_timeout: must be >= 0")
	case c.ListenerMaxConnections < 0:
		return fmt.Errorf("listener_max_connections: must be >= 0")
	case c.MaxConnections < 0:
		return fmt.Errorf("max_connections: must be >= 0")
	case c.LBPolicy != string(cluster.LeastRequest) && c.LBPolicy != string(cluster.RoundRobin):
		return fmt.Errorf("lb_policy: %q: must be least_request or round_robin", c.LBPolicy)
	case c.OutlierInterval <= 0:
		return fmt.Errorf("outlier_interval: must be > 0")
	case c.RetryBudgetPercent < 0 || c.RetryBudgetPercent > 100:
		return fmt.Errorf("retry_budget_percent: must be 0-100")
	case c.MinRetryConcurrency < 0:
		return fmt.Errorf("min_retry_concurrency: must be >= 0")
	case c.DefaultConnectTimeout <= 0:
		return fmt.Errorf("default_connect_timeout: must be > 0")
	case c.DefaultRequestTimeout <= 0:
		return fmt.Errorf("default_request_timeout: must be > 0")
	}
	for i, s := range c.RetriableStatuses {
		if s < 100 || s > 599 {
			return fmt.Errorf("retriable_statuses[%d]: %d is not an HTTP status", i, s)
		}
	}
	return nil
}

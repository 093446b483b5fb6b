package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/detourmesh/detour/internal/governance"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// ValidProtocol reports whether p is "tcp", "http" or "grpc".
func ValidProtocol(p string) bool {
	switch p {
	case "tcp", "http", "grpc", "dubbo", "tri":
		return true
	}
	return false
}

// ProtocolsHelp names the valid protocols, for error messages.
const ProtocolsHelp = "tcp, http, grpc, dubbo or tri"

// RegistryKind returns the kind of a registry URL: "embedded", "etcd",
// "zookeeper" or "nacos", and an error for anything else.
func RegistryKind(u string) (string, error) {
	if u == "embedded" {
		return "embedded", nil
	}
	scheme, _, ok := strings.Cut(u, "://")
	shown := RedactedURL(u) // errors never show a password
	if !ok {
		return "", fmt.Errorf("%q: want embedded, etcd://h:p[,h:p], zookeeper://h:p[,h:p] or nacos://h:p?namespace=N&group=G", shown)
	}
	switch scheme {
	case "etcd", "zookeeper", "nacos":
	default:
		return "", fmt.Errorf("%q: unknown registry kind %q (embedded, etcd, zookeeper, nacos)", shown, scheme)
	}
	if scheme == "nacos" {
		if _, err := url.Parse(u); err != nil {
			return "", fmt.Errorf("%q: not a URL", shown)
		}
	}
	hosts := RegistryHosts(u)
	if len(hosts) == 1 && hosts[0] == "" {
		return "", fmt.Errorf("%q: no host:port", shown)
	}
	for _, h := range hosts {
		if host, p, err := net.SplitHostPort(h); err != nil || p == "" || strings.ContainsAny(host, "@/?#") {
			return "", fmt.Errorf("%q: %q is not host:port", shown, h)
		}
	}
	return scheme, nil
}

// Validate checks the whole configuration and returns every problem, each
// naming its field path.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if ip := net.ParseIP(c.HostIP); ip == nil || ip.IsUnspecified() {
		bad("host_ip", "%q must be an IP address other hosts can reach", c.HostIP)
	}
	checkListen(bad, "http_listen", c.HTTPListen)
	checkListen(bad, "grpc_listen", c.GRPCListen)
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if kind, err := RegistryKind(c.Registry.URL); err != nil {
		bad("registry.url", "%v", err)
	} else {
		c.checkRegistrySecurity(bad, kind)
	}
	positive(bad, "registry.session_ttl", c.Registry.SessionTTL)
	positive(bad, "registry.dial_timeout", c.Registry.DialTimeout)
	positive(bad, "registry.request_timeout", c.Registry.RequestTimeout)
	if c.Registry.URL == "embedded" {
		checkListen(bad, "registry.embedded.client_listen", c.Registry.Embedded.ClientListen)
		checkListen(bad, "registry.embedded.peer_listen", c.Registry.Embedded.PeerListen)
	}

	checkRange(bad, "ports.ingress", c.Ports.Ingress)
	checkRange(bad, "ports.egress", c.Ports.Egress)
	if c.Ports.Ingress.From <= c.Ports.Egress.To && c.Ports.Egress.From <= c.Ports.Ingress.To {
		bad("ports.egress", "overlaps ports.ingress")
	}
	if ip := net.ParseIP(c.Ports.EgressIP); ip == nil || ip.IsUnspecified() {
		bad("ports.egress_ip", "%q must be an IP address", c.Ports.EgressIP)
	}
	if ip := net.ParseIP(c.Ports.AppIP); ip == nil || ip.IsUnspecified() {
		bad("ports.app_ip", "%q must be an IP address", c.Ports.AppIP)
	}
	if c.Ports.UnusedEgressTTL < 0 {
		bad("ports.unused_egress_ttl", "must be >= 0")
	}
	if c.Ports.Health < 1 || c.Ports.Health > 65535 {
		bad("ports.health", "%d: must be 1-65535", c.Ports.Health)
	} else if c.Ports.Ingress.Contains(c.Ports.Health) || c.Ports.Egress.Contains(c.Ports.Health) {
		bad("ports.health", "%d lies inside an ingress or egress range", c.Ports.Health)
	}

	checkListen(bad, "sidecar.admin", c.Sidecar.Admin)
	positive(bad, "sidecar.probe_interval", c.Sidecar.ProbeInterval)
	positive(bad, "sidecar.probe_timeout", c.Sidecar.ProbeTimeout)
	atLeast1(bad, "sidecar.ready_threshold", c.Sidecar.ReadyThreshold)
	atLeast1(bad, "sidecar.down_threshold", c.Sidecar.DownThreshold)
	positive(bad, "sidecar.stream_grace", c.Sidecar.StreamGrace)

	positive(bad, "health_check.interval", c.HealthCheck.Interval)
	positive(bad, "health_check.timeout", c.HealthCheck.Timeout)
	atLeast1(bad, "health_check.unhealthy_threshold", c.HealthCheck.UnhealthyThreshold)
	atLeast1(bad, "health_check.healthy_threshold", c.HealthCheck.HealthyThreshold)

	atLeast1(bad, "outlier.consecutive_failures", c.Outlier.ConsecutiveFailures)
	positive(bad, "outlier.base_ejection_time", c.Outlier.BaseEjectionTime)
	if c.Outlier.MaxEjectionTime < c.Outlier.BaseEjectionTime {
		bad("outlier.max_ejection_time", "%v: must be >= base_ejection_time", c.Outlier.MaxEjectionTime)
	}
	percent(bad, "outlier.max_ejection_percent", c.Outlier.MaxEjectionPercent)
	percent(bad, "outlier.panic_threshold", c.Outlier.PanicThreshold)
	if c.Outlier.FirstByteTimeout < 0 {
		bad("outlier.first_byte_timeout", "must be >= 0")
	}

	if c.API.MaxBodyBytes < 1024 {
		bad("api.max_body_bytes", "%d: must be at least 1024", c.API.MaxBodyBytes)
	}
	positive(bad, "api.max_wait", c.API.MaxWait)
	positive(bad, "api.initial_wait", c.API.InitialWait)
	c.validateSecurity(bad)

	checkService(bad, "service_defaults", c.Defaults)
	if c.Defaults.Protocol == "" {
		bad("service_defaults.protocol", "must not be empty")
	}
	if c.Defaults.Timeout <= 0 {
		bad("service_defaults.timeout", "must be > 0")
	}
	for _, name := range sortedKeys(c.Services) {
		if err := registry.ValidateService(name); err != nil {
			bad("services."+name, "%v", err)
		}
		checkService(bad, "services."+name, c.Services[name])
	}
	if zk := c.Frontends.ZooKeeper; zk.Listen != "" {
		if err := zk.Validate(); err != nil {
			for _, e := range unjoin(err) { // "listen: ..." -> "frontends.zookeeper.listen: ..."
				errs = append(errs, fmt.Errorf("frontends.zookeeper.%v", e))
			}
		}
	}
	if nc := c.Frontends.Nacos; nc.Listen != "" {
		if err := nc.Validate(); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("frontends.nacos.%v", e))
			}
		}
	}
	errs = append(errs, c.validateEtcd()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func checkService(bad func(string, string, ...any), path string, s Service) {
	if s.Protocol != "" && !ValidProtocol(s.Protocol) {
		bad(path+".protocol", "%q: must be %s", s.Protocol, ProtocolsHelp)
	}
	if s.Timeout < 0 {
		bad(path+".timeout", "must be >= 0")
	}
	if s.Retries != nil && (*s.Retries < 0 || *s.Retries > 10) {
		bad(path+".retries", "%d: must be 0-10", *s.Retries)
	}
	if err := governance.ValidateRoutes(governance.RoutesProto(s.Routes)); err != nil {
		bad(path+".routes", "%v", err)
	}
	if err := governance.ValidateLimit(governance.LimitProto(s.Limits)); err != nil {
		bad(path+".limits", "%v", err)
	}
}

func checkListen(bad func(string, string, ...any), field, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad(field, "%q: %v", addr, err)
		return
	}
	if _, err := registry.ParsePort(port); err != nil && port != "0" {
		bad(field, "%q: %v", addr, err)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		bad(field, "%q: host must be an IP address", addr)
	}
}

func checkRange(bad func(string, string, ...any), field string, r PortRange) {
	switch {
	case r.From < 1 || r.From > 65535:
		bad(field+".from", "%d: must be 1-65535", r.From)
	case r.To < 1 || r.To > 65535:
		bad(field+".to", "%d: must be 1-65535", r.To)
	case r.To < r.From:
		bad(field+".to", "%d: must be >= from (%d)", r.To, r.From)
	}
}

func positive(bad func(string, string, ...any), field string, d time.Duration) {
	if d <= 0 {
		bad(field, "must be > 0")
	}
}

func atLeast1(bad func(string, string, ...any), field string, n int) {
	if n < 1 {
		bad(field, "%d: must be >= 1", n)
	}
}

func percent(bad func(string, string, ...any), field string, n int) {
	if n < 0 || n > 100 {
		bad(field, "%d: must be 0-100", n)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// unjoin splits an errors.Join result, so each error gets its field path.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/internal/governance"
)

// validate checks a snapshot before anything of it is applied; the error
// names the field.
func validate(s *sidecarpb.Snapshot, hostIP string) error {
	host, err := netip.ParseAddr(s.GetHostIp())
	if err != nil {
		return fmt.Errorf("host_ip: %q: %w", s.GetHostIp(), err)
	}
	if hostIP != "" && s.GetHostIp() != hostIP {
		return fmt.Errorf("host_ip: %q differs from this sidecar's --host-ip %q", s.GetHostIp(), hostIP)
	}
	seen := map[string]string{}
	addListen := func(field, listen string) error {
		if other, dup := seen[listen]; dup {
			return fmt.Errorf("%s: %s is also %s", field, listen, other)
		}
		seen[listen] = field
		return nil
	}
	if s.GetHealthListen() != "" {
		ap, err := parseAddrPort(s.GetHealthListen())
		if err != nil {
			return fmt.Errorf("health_listen: %w", err)
		}
		if ap.Addr() != host {
			return fmt.Errorf("health_listen: %s is not on host_ip %s", s.GetHealthListen(), host)
		}
		addListen("health_listen", s.GetHealthListen())
	}
	clusters := map[string]*sidecarpb.Cluster{}
	for i, c := range s.GetClusters() {
		f := fmt.Sprintf("clusters[%d]", i)
		if c.GetService() == "" {
			return fmt.Errorf("%s.service: empty", f)
		}
		if _, dup := clusters[c.GetService()]; dup {
			return fmt.Errorf("%s.service: %q twice", f, c.GetService())
		}
		clusters[c.GetService()] = c
		if err := validateCluster(f, c); err != nil {
			return err
		}
	}
	egress := map[string]bool{}
	for i, l := range s.GetEgress() {
		f := fmt.Sprintf("egress[%d]", i)
		ap, err := parseAddrPort(l.GetListen())
		if err != nil {
			return fmt.Errorf("%s.listen: %w", f, err)
		}
		if !ap.Addr().IsLoopback() {
			return fmt.Errorf("%s.listen: %s is not a loopback address", f, l.GetListen())
		}
		if err := validProtocol(l.GetProtocol()); err != nil {
			return fmt.Errorf("%s.protocol: %w", f, err)
		}
		if egress[l.GetService()] {
			return fmt.Errorf("%s.service: %q twice", f, l.GetService())
		}
		egress[l.GetService()] = true
		if clusters[l.GetService()] == nil {
			return fmt.Errorf("%s.service: no cluster %q", f, l.GetService())
		}
		if err := addListen(f+".listen", l.GetListen()); err != nil {
			return err
		}
	}
	for i, l := range s.GetIngress() {
		f := fmt.Sprintf("ingress[%d]", i)
		ap, err := parseAddrPort(l.GetListen())
		if err != nil {
			return fmt.Errorf("%s.listen: %w", f, err)
		}
		if ap.Addr() != host {
			return fmt.Errorf("%s.listen: %s is not on host_ip %s", f, l.GetListen(), host)
		}
		if l.GetService() == "" {
			return fmt.Errorf("%s.service: empty", f)
		}
		if err := governance.ValidateLimit(l.GetLimit()); err != nil {
			return fmt.Errorf("%s.limit.%w", f, err)
		}
		t, err := parseAddrPort(l.GetTarget())
		if err != nil {
			return fmt.Errorf("%s.target: %w", f, err)
		}
		// The app is local: on loopback or on this host's own address.
		// Anything else would make the ingress a relay.
		if !t.Addr().IsLoopback() && t.Addr() != host {
			return fmt.Errorf("%s.target: %s is neither a loopback address nor host_ip", f, l.GetTarget())
		}
		if err := validProtocol(l.GetProtocol()); err != nil {
			return fmt.Errorf("%s.protocol: %w", f, err)
		}
		if err := addListen(f+".listen", l.GetListen()); err != nil {
			return err
		}
	}
	for i, a := range s.GetAppChecks() {
		f := fmt.Sprintf("app_checks[%d]", i)
		if a.GetService() == "" {
			return fmt.Errorf("%s.service: empty", f)
		}
		if _, err := parseAddrPort(a.GetTarget()); err != nil {
			return fmt.Errorf("%s.target: %w", f, err)
		}
		switch a.GetKind() {
		case "", "tcp", "grpc":
		case "http":
			if len(a.GetPath()) == 0 || a.GetPath()[0] != '/' {
				return fmt.Errorf("%s.path: %q must start with /", f, a.GetPath())
			}
		default:
			return fmt.Errorf("%s.kind: %q: must be tcp, http or grpc", f, a.GetKind())
		}
		if err := validateCheck(f+".check", a.GetCheck()); err != nil {
			return err
		}
	}
	return nil
}

func validateCluster(f string, c *sidecarpb.Cluster) error {
	if err := validProtocol(c.GetProtocol()); err != nil {
		return fmt.Errorf("%s.protocol: %w", f, err)
	}
	if err := governance.ValidateRoutes(c.GetRoutes()); err != nil {
		return fmt.Errorf("%s.routes.%w", f, err)
	}
	for _, d := range []struct {
		name string
		d    *durationpb.Duration
	}{
		{"connect_timeout", c.GetConnectTimeout()}, {"request_timeout", c.GetRequestTimeout()},
		{"outlier.base_ejection_time", c.GetOutlier().GetBaseEjectionTime()},
		{"outlier.max_ejection_time", c.GetOutlier().GetMaxEjectionTime()},
		{"outlier.first_byte_timeout", c.GetOutlier().GetFirstByteTimeout()},
	} {
		if d.d != nil && (d.d.CheckValid() != nil || d.d.AsDuration() < 0) {
			return fmt.Errorf("%s.%s: must be a duration >= 0", f, d.name)
		}
	}
	if o := c.GetOutlier(); o != nil {
		if o.GetMaxEjectionPercent() > 100 {
			return fmt.Errorf("%s.outlier.max_ejection_percent: must be 0-100", f)
		}
		if o.GetPanicThreshold() > 100 {
			return fmt.Errorf("%s.outlier.panic_threshold: must be 0-100", f)
		}
		if b, m := o.GetBaseEjectionTime().AsDuration(), o.GetMaxEjectionTime().AsDuration(); o.GetMaxEjectionTime() != nil && m < b {
			return fmt.Errorf("%s.outlier.max_ejection_time: must be >= base_ejection_time", f)
		}
	}
	if err := validateCheck(f+".health_check", c.GetHealthCheck()); err != nil {
		return err
	}
	addrs := map[string]bool{}
	for j, e := range c.GetEndpoints() {
		ef := fmt.Sprintf("%s.endpoints[%d]", f, j)
		if _, err := parseAddrPort(e.GetAddr()); err != nil {
			return fmt.Errorf("%s.addr: %w", ef, err)
		}
		if addrs[e.GetAddr()] {
			return fmt.Errorf("%s.addr: %s twice", ef, e.GetAddr())
		}
		addrs[e.GetAddr()] = true
		if e.GetAppAddr() != "" {
			if _, err := parseAddrPort(e.GetAppAddr()); err != nil {
				return fmt.Errorf("%s.app_addr: %w", ef, err)
			}
		}
		if e.GetWeight() < 1 || e.GetWeight() > 10000 {
			return fmt.Errorf("%s.weight: %d: must be 1-10000", ef, e.GetWeight())
		}
		if e.GetHealthPort() > 65535 || (e.GetMesh() && e.GetHealthPort() == 0) {
			return fmt.Errorf("%s.health_port: %d: must be 1-65535 for a mesh endpoint", ef, e.GetHealthPort())
		}
	}
	return nil
}

func validateCheck(f string, h *sidecarpb.HealthCheck) error {
	if h == nil {
		return nil
	}
	for name, d := range map[string]*durationpb.Duration{"interval": h.GetInterval(), "timeout": h.GetTimeout()} {
		if d != nil && (d.CheckValid() != nil || d.AsDuration() <= 0) {
			return fmt.Errorf("%s.%s: must be a duration > 0", f, name)
		}
	}
	return nil
}

func validProtocol(p sidecarpb.Protocol) error {
	if _, ok := sidecarpb.Protocol_name[int32(p)]; !ok {
		return fmt.Errorf("unknown protocol %d", p)
	}
	return nil
}

// parseAddrPort parses "IP:PORT" with a port 1-65535 (0 is allowed only
// for tests binding a free port).
func parseAddrPort(s string) (netip.AddrPort, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %w", s, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: bad port: %w", s, err)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

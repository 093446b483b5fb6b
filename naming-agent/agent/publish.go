package agent

import (
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// publication is one published service on this host.
type publication struct {
	req     PublishRequest
	ingress int // 0: none could be assigned; the service stays out of the mesh

	healthy              bool
	source               string // "sidecar" or "agent"
	reason               string // why unhealthy
	okStreak, failStreak int    // the agent's own check
	regErr               error
}

// Health sources.
const (
	sourceSidecar = "sidecar"
	sourceAgent   = "agent"
)

// NormalizePublish validates req and fills its defaults. The error wraps
// ErrInvalid and says what is wrong.
func NormalizePublish(req PublishRequest) (PublishRequest, error) {
	if err := registry.ValidateService(req.Service); err != nil {
		return req, err
	}
	if err := checkPort(req.Port); err != nil {
		return req, err
	}
	if req.Protocol == "" {
		req.Protocol = "tcp"
	}
	if !config.ValidProtocol(req.Protocol) {
		return req, fmt.Errorf("%w: protocol %q: must be %s", ErrInvalid, req.Protocol, config.ProtocolsHelp)
	}
	if req.Health.Type == "" {
		req.Health.Type = "tcp"
	}
	switch req.Health.Type {
	case "tcp", "grpc":
		if req.Health.Path != "" {
			return req, fmt.Errorf("%w: health.path: only for health.type http", ErrInvalid)
		}
	case "http":
		if !strings.HasPrefix(req.Health.Path, "/") {
			return req, fmt.Errorf("%w: health.path %q: must start with '/'", ErrInvalid, req.Health.Path)
		}
	default:
		return req, fmt.Errorf("%w: health.type %q: must be tcp, http or grpc", ErrInvalid, req.Health.Type)
	}
	for k := range req.Metadata {
		if strings.HasPrefix(k, MetaReservedPrefix) {
			return req, fmt.Errorf("%w: metadata key %q: the prefix %q is reserved for the agent", ErrInvalid, k, MetaReservedPrefix)
		}
	}
	if _, err := (registry.Endpoint{Service: req.Service, Addr: "127.0.0.1:1", Metadata: req.Metadata}).Normalized(); err != nil {
		return req, err
	}
	if req.Host != "" {
		ip := net.ParseIP(req.Host)
		if ip == nil || ip.IsUnspecified() || ip.IsMulticast() {
			return req, fmt.Errorf("%w: host %q: must be an IP address of this host", ErrInvalid, req.Host)
		}
		req.Host = ip.String()
	}
	if req.Weight > registry.MaxWeight {
		return req, fmt.Errorf("%w: weight %d: at most %d", ErrInvalid, req.Weight, registry.MaxWeight)
	}
	if len(req.Owner) > 256 || strings.ContainsFunc(req.Owner, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return req, fmt.Errorf("%w: owner: at most 256 printable characters", ErrInvalid)
	}
	req.Metadata = cloneMap(req.Metadata)
	return req, nil
}

// checkPort is the rule for an app's port, for publish and unpublish.
func checkPort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%w: port %d: must be 1-65535", ErrInvalid, port)
	}
	return nil
}

// Publish publishes a service on this host: it is registered through the
// sidecar's ingress while the mesh carries it, on its own port otherwise.
// The publication is on disk before Publish returns and outlives the
// agent's process (see durable.go). A service is published once per host:
// publishing it again with the same port, protocol, metadata and health
// check changes nothing; with anything else it is ErrConflict unless
// req.Update asks to replace it.
func (a *Agent) Publish(req PublishRequest) (Publication, error) {
	req, err := NormalizePublish(req)
	if err != nil {
		return Publication{}, err
	}
	if err := a.checkPublishPort(req.Port); err != nil {
		return Publication{}, err
	}
	if req.Host != "" && !a.localIP(req.Host) {
		return Publication{}, fmt.Errorf("%w: host %s is not an address of this host: the ingress forwards only to this host's apps", ErrInvalid, req.Host)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return Publication{}, ErrClosed
	}
	p := a.pubs[req.Service]
	if p != nil && samePublication(p.req, req) {
		return a.publicationLocked(p), nil
	}
	if p != nil && p.req.Owner != req.Owner && !sameFrontend(p.req.Owner, req.Owner) {
		owner := p.req.Owner
		if owner == "" {
			owner = "the API"
		}
		return Publication{}, fmt.Errorf("%w: service %q is already published on this host by %s (port %d)", ErrConflict, req.Service, owner, p.req.Port)
	}
	if p != nil && !req.Update {
		return Publication{}, fmt.Errorf("%w: service %q is already published on this host (port %d, protocol %s); unpublish it first, or publish with update to replace it",
			ErrConflict, req.Service, p.req.Port, p.req.Protocol)
	}
	next := a.requestsLocked()
	next[req.Service] = req
	if err := a.savePublicationsLocked(next); err != nil {
		return Publication{}, err
	}
	p = a.addPublicationLocked(req)
	a.updateLocked()
	return a.publicationLocked(p), nil
}

// samePublication: b would change nothing of a.
func samePublication(a, b PublishRequest) bool {
	return a.Port == b.Port && a.Protocol == b.Protocol && a.Health == b.Health && a.Host == b.Host && a.Weight == b.Weight &&
		a.Owner == b.Owner && maps.Equal(a.Metadata, b.Metadata)
}

// addPublicationLocked makes or replaces the publication of req.Service
// in memory; the caller saved it and recomputes.
func (a *Agent) addPublicationLocked(req PublishRequest) *publication {
	req.Update = false
	p := a.pubs[req.Service]
	if p == nil {
		ingress, err := a.ports.Assign(poolIngress, req.Service)
		if err != nil {
			a.log.Warn("no ingress port: the service stays out of the mesh", zap.String("service", req.Service), zap.Error(err))
		}
		p = &publication{ingress: ingress}
		a.pubs[req.Service] = p
	}
	if p.req.Port != req.Port {
		// The app asked to be published, so it is taken as listening; its
		// health check withdraws it within a few intervals if not.
		p.healthy, p.source, p.reason, p.okStreak, p.failStreak = true, sourceAgent, "", 0, 0
	}
	p.req = req
	a.log.Info("published", zap.String("service", req.Service), zap.Int("port", req.Port), zap.String("protocol", req.Protocol), zap.Int("ingress_port", p.ingress))
	return p
}

// Unpublish withdraws the publication of service on port, for good.
func (a *Agent) Unpublish(service string, port int) error {
	if err := registry.ValidateService(service); err != nil {
		return err
	}
	if err := checkPort(port); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	p := a.pubs[service]
	if p == nil || p.req.Port != port {
		return fmt.Errorf("%w: service %q port %d", ErrNotPublished, service, port)
	}
	return a.unpublishLocked(p)
}

// unpublishLocked ends p, on disk first.
func (a *Agent) unpublishLocked(p *publication) error {
	next := a.requestsLocked()
	delete(next, p.req.Service)
	if err := a.savePublicationsLocked(next); err != nil {
		return err
	}
	delete(a.pubs, p.req.Service)
	a.log.Info("unpublished", zap.String("service", p.req.Service), zap.Int("port", p.req.Port), zap.String("owner", p.req.Owner))
	a.updateLocked()
	return nil
}

// ingressCarriedLocked: the sidecar is up, the service is in the mesh and
// the acknowledged snapshot has its ingress listener to this app.
func (a *Agent) ingressCarriedLocked(p *publication) bool {
	if !a.sc.up || p.ingress == 0 || !a.meshEnabledLocked(p.req.Service) {
		return false
	}
	return a.sc.ackedIngress[p.req.Service] == a.ingressListen(p)+"->"+a.appTarget(p)
}

func (a *Agent) ingressListen(p *publication) string {
	return net.JoinHostPort(a.cfg.HostIP, strconv.Itoa(p.ingress))
}

// appTarget is where the sidecar reaches a local app: the host it
// registered itself at, else APP_IP:PORT.
func (a *Agent) appTarget(p *publication) string {
	host := a.cfg.Ports.AppIP
	if p.req.Host != "" {
		host = p.req.Host
	}
	return net.JoinHostPort(host, strconv.Itoa(p.req.Port))
}

// realAddr is what the registry gets for p while the mesh does not carry
// it, and what the agent's own check dials: the app's own address when it
// registered one other hosts can reach, else HOST_IP:PORT.
func (a *Agent) realAddr(p *publication) string {
	host := a.cfg.HostIP
	if h := p.req.Host; h != "" && (h == a.cfg.HostIP || !net.ParseIP(h).IsLoopback()) {
		host = h
	}
	return net.JoinHostPort(host, strconv.Itoa(p.req.Port))
}

// desiredLocked is the registration p should have now; false: none (the
// app is unhealthy).
func (a *Agent) desiredLocked(p *publication) (registry.Endpoint, bool) {
	if !p.healthy {
		return registry.Endpoint{}, false
	}
	md := cloneMap(p.req.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[MetaPort] = strconv.Itoa(p.req.Port)
	md[MetaProtocol] = p.req.Protocol
	ep := registry.Endpoint{Service: p.req.Service, Weight: p.req.Weight, Metadata: md}
	if a.ingressCarriedLocked(p) {
		ep.Addr = a.ingressListen(p)
		md[MetaMesh] = "true"
		md[MetaHealthPort] = strconv.Itoa(a.cfg.Ports.Health)
	} else {
		ep.Addr = a.realAddr(p)
		md[MetaMesh] = "false"
	}
	ep, err := ep.Normalized()
	if err != nil {
		// NormalizePublish checked the app's part; ours is well-formed.
		a.log.Error("bad registration", zap.String("service", p.req.Service), zap.Error(err))
		return registry.Endpoint{}, false
	}
	return ep, true
}

func (a *Agent) publicationLocked(p *publication) Publication {
	out := Publication{
		Service:      p.req.Service,
		Port:         p.req.Port,
		Protocol:     p.req.Protocol,
		Metadata:     cloneMap(p.req.Metadata),
		Health:       p.req.Health,
		Host:         p.req.Host,
		Owner:        p.req.Owner,
		IngressPort:  p.ingress,
		Healthy:      p.healthy,
		HealthSource: p.source,
	}
	if p.regErr != nil {
		out.RegistryError = p.regErr.Error()
	}
	for k, ep := range a.registered {
		if k.service == p.req.Service {
			out.RegisteredAddr = ep.Addr
			out.Mesh = ep.Metadata[MetaMesh] == "true"
		}
	}
	return out
}

// localIP: host (a valid IP) is loopback, the host's or the apps' IP, or
// on one of this machine's interfaces.
func (a *Agent) localIP(host string) bool {
	ip := net.ParseIP(host)
	if ip.IsLoopback() || host == a.cfg.HostIP || host == a.cfg.Ports.AppIP {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// sameFrontend: a and b are sessions of one front end ("zookeeper/0x1",
// "zookeeper/0x2"): the newer may take a service over from the older (an
// app restarted before its old session ended).
func sameFrontend(a, b string) bool {
	fa, _, okA := strings.Cut(a, "/")
	fb, _, okB := strings.Cut(b, "/")
	return okA && okB && fa == fb
}

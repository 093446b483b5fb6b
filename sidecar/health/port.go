package health

import (
	"net/http"
	"strings"
	"sync"

	"github.com/detourmesh/detour/internal/httpbody"
)

// MaxBodyBytes is the largest request body the health port takes: a GET
// needs none, so a small one is tolerated and ignored; a larger one is
// answered 413 (package httpbody).
const MaxBodyBytes = 1 << 10

// Port is the health port's handler: GET /healthz/<service> answers 200
// when this sidecar is up and the service's app is healthy, 503 when it
// is not (or not checked yet, or the sidecar is draining), 404 for a
// service this sidecar does not front.
type Port struct {
	mu       sync.RWMutex
	fronted  map[string]bool
	healthy  map[string]bool
	reasons  map[string]string
	draining bool
}

// NewPort returns a handler that fronts nothing yet.
func NewPort() *Port {
	return &Port{fronted: map[string]bool{}, healthy: map[string]bool{}, reasons: map[string]string{}}
}

// SetFronted sets the services this sidecar fronts (its ingress listeners).
func (p *Port) SetFronted(services []string) {
	m := make(map[string]bool, len(services))
	for _, s := range services {
		m[s] = true
	}
	p.mu.Lock()
	p.fronted = m
	p.mu.Unlock()
}

// SetApp records a stage-1 result.
func (p *Port) SetApp(service string, healthy bool, reason string) {
	p.mu.Lock()
	p.healthy[service] = healthy
	p.reasons[service] = reason
	p.mu.Unlock()
}

// ForgetApp drops a service's stage-1 result.
func (p *Port) ForgetApp(service string) {
	p.mu.Lock()
	delete(p.healthy, service)
	delete(p.reasons, service)
	p.mu.Unlock()
}

// Drain makes every answer 503: the sidecar is going away.
func (p *Port) Drain() {
	p.mu.Lock()
	p.draining = true
	p.mu.Unlock()
}

// ServeHTTP answers GET /healthz/<service>; a body over MaxBodyBytes is
// answered 413 whatever the path and method.
func (p *Port) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !httpbody.Check(w, r, MaxBodyBytes) {
		return
	}
	svc, ok := strings.CutPrefix(r.URL.Path, "/healthz/")
	if !ok || svc == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	p.mu.RLock()
	fronted, healthy, reason, draining := p.fronted[svc], p.healthy[svc], p.reasons[svc], p.draining
	p.mu.RUnlock()
	switch {
	case !fronted:
		http.Error(w, "not fronted here: "+svc, http.StatusNotFound)
	case draining:
		http.Error(w, "sidecar draining", http.StatusServiceUnavailable)
	case !healthy:
		if reason == "" {
			reason = "not checked yet"
		}
		http.Error(w, "app unhealthy: "+reason, http.StatusServiceUnavailable)
	default:
		w.Write([]byte("ok\n"))
	}
}

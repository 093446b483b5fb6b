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
// when this sidecar is up and the service's app is healthy, and the same
// 503 otherwise: not checked yet, unhealthy, the sidecar draining, or a
// service this sidecar does not front. The port is open to the network,
// so no answer tells a name fronted here from a guessed one, nor says
// why an app is down (the admin address's /stats does).
type Port struct {
	mu       sync.RWMutex
	fronted  map[string]bool
	healthy  map[string]bool
	draining bool
}

// NewPort returns a handler that fronts nothing yet.
func NewPort() *Port {
	return &Port{fronted: map[string]bool{}, healthy: map[string]bool{}}
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

// SetApp records a stage-1 result; the reason is not shown here.
func (p *Port) SetApp(service string, healthy bool, _ string) {
	p.mu.Lock()
	p.healthy[service] = healthy
	p.mu.Unlock()
}

// ForgetApp drops a service's stage-1 result.
func (p *Port) ForgetApp(service string) {
	p.mu.Lock()
	delete(p.healthy, service)
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
	fronted, healthy, draining := p.fronted[svc], p.healthy[svc], p.draining
	p.mu.RUnlock()
	if !fronted || draining || !healthy {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

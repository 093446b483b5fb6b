package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/api/agentjson"
	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/internal/governance"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// A service's routing rules (applied by this host's sidecar at egress)
// and inbound limits (at its ingress) are the config file's
// (services.S.routes, services.S.limits) until set at run time through
// the API; run-time settings are kept in the data dir (governance.json)
// and outlive restarts, as the mesh flags do.

// savedRules are the run-time routes and limits, as saved.
type savedRules struct {
	Routes map[string]*agentjson.Routes `json:"routes,omitempty"`
	Limits map[string]*agentjson.Limit  `json:"limits,omitempty"`
}

func governancePath(dataDir string) string { return filepath.Join(dataDir, "governance.json") }

func loadGovernance(dataDir string, log *zap.Logger) savedRules {
	var g savedRules
	b, err := os.ReadFile(governancePath(dataDir))
	if err == nil {
		err = json.Unmarshal(b, &g)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("ignoring the saved routes and limits", zap.String("path", governancePath(dataDir)), zap.Error(err))
		g = savedRules{}
	}
	for svc, r := range g.Routes {
		if registry.ValidateService(svc) != nil || governance.ValidateRoutes(governance.RoutesProto(r)) != nil {
			delete(g.Routes, svc)
		}
	}
	for svc, l := range g.Limits {
		if registry.ValidateService(svc) != nil || governance.ValidateLimit(governance.LimitProto(l)) != nil {
			delete(g.Limits, svc)
		}
	}
	return g
}

// routesLocked: the run-time rules, else the config's; nil: none.
func (a *Agent) routesLocked(service string) *agentjson.Routes {
	if r, ok := a.gov.Routes[service]; ok {
		return r
	}
	return a.cfg.Services[service].Routes
}

func (a *Agent) limitLocked(service string) *agentjson.Limit {
	if l, ok := a.gov.Limits[service]; ok {
		return l
	}
	return a.cfg.Services[service].Limits
}

func (a *Agent) routesProtoLocked(service string) *sidecarpb.Routes {
	return governance.RoutesProto(a.routesLocked(service))
}

func (a *Agent) limitProtoLocked(service string) *sidecarpb.InboundLimit {
	return governance.LimitProto(a.limitLocked(service))
}

// Routes returns service's rules in force (nil: none).
func (a *Agent) Routes(service string) (*agentjson.Routes, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.routesLocked(service), nil
}

// Limit returns service's inbound limit in force (nil: none).
func (a *Agent) Limit(service string) (*agentjson.Limit, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limitLocked(service), nil
}

// SetRoutes sets service's routing rules live (nil: none, over the
// config's). Bad rules are ErrInvalid naming the field; nothing changes.
func (a *Agent) SetRoutes(service string, r *agentjson.Routes) error {
	if err := governance.ValidateRoutes(governance.RoutesProto(r)); err != nil {
		return fmt.Errorf("%w: routes.%v", ErrInvalid, err)
	}
	return a.setGovernance(service, func(g *savedRules) { g.Routes[service] = r })
}

// SetLimit sets service's inbound limit live (nil: none, over the
// config's).
func (a *Agent) SetLimit(service string, l *agentjson.Limit) error {
	if err := governance.ValidateLimit(governance.LimitProto(l)); err != nil {
		return fmt.Errorf("%w: limits.%v", ErrInvalid, err)
	}
	return a.setGovernance(service, func(g *savedRules) { g.Limits[service] = l })
}

func (a *Agent) setGovernance(service string, set func(*savedRules)) error {
	if err := registry.ValidateService(service); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if !a.knownLocked(service) {
		return errUnknown(service)
	}
	next := savedRules{Routes: map[string]*agentjson.Routes{}, Limits: map[string]*agentjson.Limit{}}
	for k, v := range a.gov.Routes {
		next.Routes[k] = v
	}
	for k, v := range a.gov.Limits {
		next.Limits[k] = v
	}
	set(&next)
	if err := saveJSON(governancePath(a.cfg.DataDir), "governance", next); err != nil {
		return err
	}
	a.gov = next
	a.log.Info("routes or limits set", zap.String("service", service))
	a.updateLocked()
	return nil
}

// knownLocked: whether this host publishes, follows or configures
// service, the services a live setting may name (a typo must not be
// saved forever). a.mu held.
func (a *Agent) knownLocked(service string) bool {
	_, published := a.pubs[service]
	_, subscribed := a.subs[service]
	_, configured := a.cfg.Services[service]
	return published || subscribed || configured
}

func errUnknown(service string) error {
	return fmt.Errorf("%w: %q is neither published nor subscribed on this host, nor in its config", ErrUnknownService, service)
}

package agent

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Unsubscribe ends this host's subscription to service: its watch stops,
// its egress port is released and its sidecar listener goes with the
// next snapshot. Apps still waiting get the last answer; an app that
// resolves again subscribes anew (and may get another port).
func (a *Agent) Unsubscribe(service string) error {
	if err := registry.ValidateService(service); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	s := a.subs[service]
	if s == nil {
		return fmt.Errorf("%w: service %q", ErrNotSubscribed, service)
	}
	return a.dropLocked(s, "unsubscribed")
}

// dropLocked ends s (see Unsubscribe); what says why, in the log.
func (a *Agent) dropLocked(s *subscription, what string) error {
	if s.egress != 0 {
		if err := a.ports.Release(poolEgress, s.service); err != nil {
			return fmt.Errorf("agent: release the egress port of %q: %w", s.service, err)
		}
	}
	s.cancel()
	s.dropped = true
	delete(a.subs, s.service)
	close(s.notify)
	s.notify = make(chan struct{})
	close(s.viewNotify)
	s.viewNotify = make(chan struct{})
	a.log.Info(what, zap.String("service", s.service), zap.Int("egress_port", s.egress))
	a.updateLocked()
	a.kick(a.saveWake)
	return nil
}

// expireLoop drops subscriptions nobody uses (config
// ports.unused_egress_ttl): no app has resolved or watched the service
// for the TTL, and it has had no endpoints for as long. One that has
// endpoints is never dropped here: an app may dial its egress for days
// without resolving again.
func (a *Agent) expireLoop() {
	ttl := a.cfg.Ports.UnusedEgressTTL
	if ttl <= 0 {
		return
	}
	t := time.NewTicker(max(ttl/10, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		now := a.opts.now()
		for _, s := range a.subs {
			unused := s.waiters == 0 && now.Sub(s.lastAsked) >= ttl
			if unused && !s.emptySince.IsZero() && now.Sub(s.emptySince) >= ttl {
				if err := a.dropLocked(s, "unused subscription expired: no endpoints and no app asked for "+ttl.String()); err != nil {
					a.log.Warn("unused subscription kept", zap.String("service", s.service), zap.Error(err))
				}
			}
		}
		a.mu.Unlock()
	}
}

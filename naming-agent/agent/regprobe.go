package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errNotReached is the registry's state until the first call succeeds:
// an agent whose registry was never reachable must not report it ok.
var errNotReached = errors.New("not reached yet")

// probeService is the service the registry probe lists: a name no app
// can publish (the detour. prefix is the agent's), so the answer is
// always empty and costs the registry one read.
const probeService = "detour.registry-probe"

// registryProbeLoop lists probeService every interval while the registry
// is in error (or never reached), so status tells an unreachable registry
// from a quiet one, and clears the error as soon as it answers. While the
// registry answers, the registrar and the watches report its health.
func (a *Agent) registryProbeLoop() {
	t := time.NewTicker(a.cfg.HealthCheck.Interval)
	defer t.Stop()
	for {
		a.mu.Lock()
		failing := a.regErr != nil
		a.mu.Unlock()
		if failing {
			ctx, cancel := context.WithTimeout(a.ctx, a.cfg.Registry.RequestTimeout)
			_, err := a.reg.List(ctx, probeService)
			cancel()
			if a.ctx.Err() != nil {
				return
			}
			a.mu.Lock()
			if err != nil {
				err = fmt.Errorf("registry unreachable: %w", err)
			}
			a.setRegistryErrLocked(err)
			a.metrics.observe(a)
			a.mu.Unlock()
		}
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
	}
}

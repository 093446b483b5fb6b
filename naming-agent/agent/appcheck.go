package agent

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// App death. While the sidecar is up and reports a stage-1 result for a
// published app, that result decides the app's health. Otherwise (sidecar
// down, or not checking this app yet) the agent checks it itself: a TCP
// connect to what it registers then (HOST_IP:PORT, or the app's own
// address) every health_check.interval, so it checks what remote callers
// will dial; the sidecar checks what its ingress forwards to;
// unhealthy_threshold failures in a row withdraw the registration,
// healthy_threshold successes restore it. This works for any app, on any
// protocol, with no heartbeat from the app.

// updateHealthSourcesLocked takes the sidecar's verdicts where it has
// them and hands the rest to the agent's own check.
func (a *Agent) updateHealthSourcesLocked() {
	for _, p := range a.pubs {
		healthy, reason, ok := a.sc.appHealth(p.req.Service, a.appTarget(p))
		if a.sc.up && ok {
			if p.source != sourceSidecar {
				a.log.Info("app health now from the sidecar", zap.String("service", p.req.Service))
			}
			a.setHealthyLocked(p, healthy, reason)
			p.source = sourceSidecar
			continue
		}
		if p.source != sourceAgent {
			p.source, p.okStreak, p.failStreak = sourceAgent, 0, 0
			a.log.Info("app health now from the agent's own check", zap.String("service", p.req.Service))
		}
	}
}

func (a *Agent) setHealthyLocked(p *publication, healthy bool, reason string) {
	if p.healthy != healthy {
		if healthy {
			a.log.Info("app healthy: restoring its registration", zap.String("service", p.req.Service), zap.Int("port", p.req.Port), zap.String("source", p.source))
		} else {
			a.log.Warn("app unhealthy: withdrawing its registration", zap.String("service", p.req.Service), zap.Int("port", p.req.Port), zap.String("reason", reason))
		}
	}
	p.healthy, p.reason = healthy, reason
}

// appCheckLoop runs the agent's own check of the apps whose health source
// is the agent.
func (a *Agent) appCheckLoop() {
	hc := a.cfg.HealthCheck
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		type target struct {
			service string
			port    int
			addr    string
		}
		var targets []target
		a.mu.Lock()
		for _, p := range a.pubs {
			if p.source == sourceAgent {
				targets = append(targets, target{p.req.Service, p.req.Port, a.realAddr(p)})
			}
		}
		a.mu.Unlock()
		results := make([]error, len(targets))
		var wg sync.WaitGroup
		for i, tg := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = a.checkApp(tg.addr)
			}()
		}
		wg.Wait()
		a.mu.Lock()
		changed := false
		for i, tg := range targets {
			p := a.pubs[tg.service]
			if p == nil || p.req.Port != tg.port || p.source != sourceAgent {
				continue
			}
			if err := results[i]; err == nil {
				p.okStreak, p.failStreak = p.okStreak+1, 0
				if !p.healthy && p.okStreak >= hc.HealthyThreshold {
					a.setHealthyLocked(p, true, "")
					changed = true
				}
			} else {
				p.failStreak, p.okStreak = p.failStreak+1, 0
				if p.healthy && p.failStreak >= hc.UnhealthyThreshold {
					a.setHealthyLocked(p, false, err.Error())
					changed = true
				}
			}
		}
		if changed {
			a.updateLocked()
		}
		a.mu.Unlock()
	}
}

func (a *Agent) checkApp(addr string) error {
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.HealthCheck.Timeout)
	defer cancel()
	c, err := a.opts.dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

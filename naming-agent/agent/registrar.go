package agent

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

type regKey struct{ service, addr string }

// registrarLoop brings the registry to the registrations the publications
// should have, one call at a time, retrying with backoff while the
// registry fails. Registrations are made before the ones they replace are
// removed, so a switch between ingress and real port leaves no gap.
func (a *Agent) registrarLoop() {
	var backoff time.Duration
	for {
		var retry <-chan time.Time
		var t *time.Timer
		if backoff > 0 {
			t = time.NewTimer(backoff)
			retry = t.C
		}
		select {
		case <-a.ctx.Done():
			return
		case <-a.regWake:
		case <-retry:
		}
		if t != nil {
			t.Stop()
		}
		if a.reconcile() {
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		} else {
			backoff = 0
		}
	}
}

// reconcile makes one pass and reports whether a call failed.
func (a *Agent) reconcile() (failed bool) {
	a.mu.Lock()
	want := map[regKey]registry.Endpoint{}
	var held map[string][]registry.Endpoint // until settled: what an earlier run left
	if !a.sc.settled {
		held = map[string][]registry.Endpoint{}
		for k := range a.adopted {
			if ep, ok := a.registered[k]; ok {
				held[ep.Service] = append(held[ep.Service], ep)
			}
		}
	}
	for _, p := range a.pubs {
		if eps := held[p.req.Service]; len(eps) > 0 {
			for _, ep := range eps {
				want[regKey{ep.Service, ep.Addr}] = ep
			}
			continue
		}
		if ep, ok := a.desiredLocked(p); ok {
			want[regKey{ep.Service, ep.Addr}] = ep
		}
	}
	var add []registry.Endpoint
	var remove []regKey
	for k, ep := range want {
		if cur, ok := a.registered[k]; !ok || !cur.Equal(ep) {
			add = append(add, ep)
		}
	}
	for k := range a.registered {
		if _, ok := want[k]; !ok {
			remove = append(remove, k)
		}
	}
	a.mu.Unlock()

	for _, ep := range add {
		err := a.call(func(ctx context.Context) error { return a.reg.Register(ctx, ep) })
		a.mu.Lock()
		if err == nil {
			a.registered[regKey{ep.Service, ep.Addr}] = ep
			a.log.Info("registered", zap.String("service", ep.Service), zap.String("addr", ep.Addr), zap.String("mesh", ep.Metadata[MetaMesh]))
		}
		a.noteRegCallLocked(ep.Service, err)
		a.mu.Unlock()
		failed = failed || err != nil
	}
	for _, k := range remove {
		err := a.call(func(ctx context.Context) error { return a.reg.Deregister(ctx, k.service, k.addr) })
		if errors.Is(err, registry.ErrNotFound) {
			err = nil
		}
		a.mu.Lock()
		if err == nil {
			delete(a.registered, k)
			a.log.Info("deregistered", zap.String("service", k.service), zap.String("addr", k.addr))
		}
		a.noteRegCallLocked(k.service, err)
		a.mu.Unlock()
		failed = failed || err != nil
	}
	if len(add)+len(remove) > 0 {
		a.mu.Lock()
		a.metrics.observe(a)
		a.mu.Unlock()
	}
	return failed
}

func (a *Agent) call(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.Registry.RequestTimeout)
	defer cancel()
	return f(ctx)
}

func (a *Agent) noteRegCallLocked(service string, err error) {
	if p := a.pubs[service]; p != nil {
		p.regErr = err
	}
	if err != nil && a.ctx.Err() == nil {
		a.log.Warn("registry call failed; will retry", zap.String("service", service), zap.Error(err))
	}
	if a.ctx.Err() == nil {
		a.setRegistryErrLocked(err)
	}
}

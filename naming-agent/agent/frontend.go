package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Frontend returns the agent as its registry front ends see it.
func (a *Agent) Frontend() frontend.Core { return frontendCore{a} }

type frontendCore struct{ a *Agent }

var _ frontend.Core = frontendCore{}

// Publish publishes p for its owner; the same owner's publication of
// the service is replaced (Publish refuses another owner's).
func (c frontendCore) Publish(p frontend.Publication) error {
	// A front end's registration always replaces what it may replace:
	// Publish refuses another owner's publication by itself.
	_, err := c.a.Publish(PublishRequest{
		Service: p.Service, Port: p.Port, Protocol: p.Protocol, Metadata: p.Metadata,
		Host: p.Host, Weight: p.Weight, Owner: p.Owner, Update: true,
	})
	return err
}

// Unpublish ends owner's publication of service.
func (c frontendCore) Unpublish(owner, service string) error {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	p := a.pubs[service]
	if p == nil || p.req.Owner != owner {
		return fmt.Errorf("%w: %w: service %q by %q", ErrNotPublished, frontend.ErrNotHeld, service, owner)
	}
	return a.unpublishLocked(p)
}

// Owned returns the publications whose owner starts with prefix.
func (c frontendCore) Owned(prefix string) []frontend.Publication {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []frontend.Publication
	for _, svc := range slices.Sorted(maps.Keys(a.pubs)) {
		r := a.pubs[svc].req
		if r.Owner != "" && strings.HasPrefix(r.Owner, prefix) {
			out = append(out, frontend.Publication{
				Service: r.Service, Host: r.Host, Port: r.Port, Protocol: r.Protocol, Weight: r.Weight,
				Metadata: cloneMap(r.Metadata), Owner: r.Owner,
			})
		}
	}
	return out
}

// Watch calls fn with service's view now and on every change.
func (c frontendCore) Watch(ctx context.Context, service string, fn func(frontend.View)) error {
	return c.a.watchView(ctx, service, fn)
}

// watchView follows service's view until ctx ends. It counts as a
// subscriber, as a blocked query does; when the subscription is dropped
// (unsubscribed) it subscribes again.
func (a *Agent) watchView(ctx context.Context, service string, fn func(frontend.View)) error {
	if err := registry.ValidateService(service); err != nil {
		return err
	}
	var (
		last *subscription // the subscription last sent from
		sent uint64        // its view revision then
	)
	for {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return ErrClosed
		}
		_, existed := a.subs[service]
		s := a.subscribeLocked(service)
		if !existed {
			a.updateSubLocked(s)
		}
		s.lastAsked = a.opts.now()
		var view frontend.View
		changed := s != last || s.viewRev != sent
		if changed {
			view = a.viewLocked(s)
			last, sent = s, s.viewRev
		}
		wake := s.viewNotify
		s.waiters++
		a.metrics.subscribers.Inc()
		a.mu.Unlock()
		if changed {
			fn(view)
		}
		select {
		case <-wake:
		case <-ctx.Done():
		}
		a.mu.Lock()
		s.waiters--
		s.lastAsked = a.opts.now()
		a.metrics.subscribers.Dec()
		a.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// viewLocked is s as the front ends show it: the answer's mesh state and
// egress, and every instance with its app's own metadata.
func (a *Agent) viewLocked(s *subscription) frontend.View {
	v := frontend.View{Service: s.service, Revision: s.viewRev, Known: s.known, Mesh: s.answer.Mesh}
	if v.Mesh {
		v.Egress = a.egressListen(s)
	}
	for _, ep := range s.eps {
		md := make(map[string]string, len(ep.Metadata))
		for k, val := range ep.Metadata {
			if !strings.HasPrefix(k, MetaReservedPrefix) {
				md[k] = val
			}
		}
		weight := ep.Weight
		if weight == 0 {
			weight = registry.DefaultWeight
		}
		v.Instances = append(v.Instances, frontend.Instance{Addr: realAddr(ep), Protocol: ep.Metadata[MetaProtocol], Weight: weight, Metadata: md})
	}
	slices.SortFunc(v.Instances, func(x, y frontend.Instance) int { return strings.Compare(x.Addr, y.Addr) })
	return v
}

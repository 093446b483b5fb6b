package nacos

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// How registrations reach Nacos. In Nacos 2.x a connection publishes one
// thing per service: a registerInstance or a batchRegisterInstance
// replaces whatever the connection published for the service before, and a
// deregisterInstance removes all of it, whichever instance it names. So
// the adapter always sends a service's whole set of registrations:
// one instance with registerInstance, several with batchRegisterInstance
// (Nacos 2.1 and later), none with deregisterInstance. Register and
// Deregister compute the new set; it becomes the recorded one only when
// Nacos accepted it.

// Register implements registry.Registry. The port of ep.Addr is recorded
// in canonical form ("h:0080" becomes "h:80"), the only form Nacos can
// give back.
func (r *Registry) Register(ctx context.Context, ep registry.Endpoint) error {
	ep, err := ep.Normalized()
	if err != nil {
		return fmt.Errorf("nacos: register: %w", err)
	}
	if ep.Addr, err = canonicalAddr(ep.Addr); err != nil {
		return fmt.Errorf("nacos: register: %w", err)
	}
	st, err := r.service(ep.Service)
	if err != nil {
		return fmt.Errorf("nacos: register %s: %w", ep, err)
	}
	if err := r.lock(ctx, st); err != nil {
		return fmt.Errorf("nacos: register %s: %w", ep, err)
	}
	r.mu.Lock()
	if cur, ok := st.regs[ep.Addr]; ok && cur.Equal(ep) && !st.dirty {
		r.mu.Unlock()
		r.unlock(st)
		return nil
	}
	next := maps.Clone(st.regs)
	next[ep.Addr] = ep
	r.mu.Unlock()
	if err := r.publish(ctx, st, next, ep); err != nil {
		return fmt.Errorf("nacos: register %s: %w", ep, err)
	}
	return nil
}

// Deregister implements registry.Registry.
func (r *Registry) Deregister(ctx context.Context, service, addr string) error {
	if err := registry.ValidateService(service); err != nil {
		return fmt.Errorf("nacos: deregister: %w", err)
	}
	a, err := canonicalAddr(addr)
	if err != nil {
		return fmt.Errorf("nacos: deregister %s@%s: %w", service, addr, err)
	}
	what := service + "@" + a
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("nacos: deregister %s: %w", what, registry.ErrClosed)
	}
	st := r.services[service]
	r.mu.Unlock()
	if st == nil {
		return fmt.Errorf("nacos: deregister %s: %w", what, registry.ErrNotFound)
	}
	if err := r.lock(ctx, st); err != nil {
		return fmt.Errorf("nacos: deregister %s: %w", what, err)
	}
	r.mu.Lock()
	ep, ok := st.regs[a]
	if !ok {
		r.mu.Unlock()
		r.unlock(st)
		return fmt.Errorf("nacos: deregister %s: %w", what, registry.ErrNotFound)
	}
	next := maps.Clone(st.regs)
	delete(next, a)
	r.mu.Unlock()
	if err := r.publish(ctx, st, next, ep); err != nil {
		return fmt.Errorf("nacos: deregister %s: %w", what, err)
	}
	return nil
}

// publish sends next as st's whole set and records it once Nacos accepted
// it. changed is the endpoint added or removed, named in the
// deregistration when next is empty. st's lock is held on entry and
// released when the request is over, which may be after publish returned
// ctx's error: the next write of the service waits for it. A failed or
// abandoned request leaves st dirty, so the reconciler puts Nacos back in
// line with what is recorded.
func (r *Registry) publish(ctx context.Context, st *svcState, next map[string]registry.Endpoint, changed registry.Endpoint) error {
	if err := ctx.Err(); err != nil {
		r.unlock(st)
		return err
	}
	gone, err := instanceOf(changed, r.cfg.Cluster)
	if err != nil {
		r.unlock(st)
		return err
	}
	req, sent, err := r.publication(st.name, next, &gone)
	if err != nil {
		r.unlock(st)
		return err
	}
	r.mu.Lock()
	epoch := r.epoch
	r.mu.Unlock()
	_, err = r.call(ctx, req, func(_ rpc_response.IResponse, err error, abandoned bool) {
		r.mu.Lock()
		st.lastSent = sent
		if err == nil && !abandoned {
			st.regs = next
			// A connection made while the request was out may not have
			// it: publish again.
			st.dirty = r.epoch != epoch
		} else {
			st.dirty = true
		}
		if st.dirty {
			r.kickLocked()
		}
		r.mu.Unlock()
		r.unlock(st)
	})
	return err
}

// publication builds the request that makes Nacos hold exactly regs for
// this client under service, and the instance it names. With regs empty
// it is a deregistration naming gone; with gone nil too there is nothing
// to send (nil request, nil error).
func (r *Registry) publication(service string, regs map[string]registry.Endpoint, gone *model.Instance) (rpc_request.IRequest, *model.Instance, error) {
	eps := slices.SortedFunc(maps.Values(regs), func(a, b registry.Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	insts := make([]model.Instance, 0, len(eps))
	for _, ep := range eps {
		in, err := instanceOf(ep, r.cfg.Cluster)
		if err != nil {
			return nil, nil, err
		}
		insts = append(insts, in)
	}
	ns, group := r.cfg.Namespace, r.cfg.Group
	switch len(insts) {
	case 0:
		if gone == nil {
			return nil, nil, nil
		}
		return rpc_request.NewInstanceRequest(ns, service, group, "deregisterInstance", *gone), gone, nil
	case 1:
		return rpc_request.NewInstanceRequest(ns, service, group, "registerInstance", insts[0]), &insts[0], nil
	default:
		return rpc_request.NewBatchInstanceRequest(ns, service, group, "batchRegisterInstance", insts), &insts[0], nil
	}
}

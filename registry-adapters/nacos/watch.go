package nacos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// subscription is this client's Nacos subscription to one service, shared
// by every watcher of the service: Nacos keeps one subscription per
// connection and service, so the adapter subscribes when the first watcher
// starts and unsubscribes when the last one closes. Guarded by
// Registry.mu.
type subscription struct {
	watchers map[*watcher]struct{}
	// known: eps holds a full set read from Nacos.
	known bool
	eps   []registry.Endpoint
	// refTime is the lastRefTime of eps. An answer or push older than it
	// is dropped (pushes and answers travel on different streams). It is
	// reset on a new connection, whose server's clock rules from then on.
	refTime uint64
	// err is set while the set cannot be read (ErrUnavailable); errGen
	// counts the times it was set.
	err    error
	errGen uint64
	// changed is closed and replaced whenever eps or err change.
	changed chan struct{}
	// needSub: the subscription must be made (again) on the current
	// connection.
	needSub bool
	// active: Nacos accepted a subscription once, so an unsubscribe is
	// worth sending.
	active bool
}

func newSubscription() *subscription {
	return &subscription{watchers: map[*watcher]struct{}{}, changed: make(chan struct{}), needSub: true}
}

func (s *subscription) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// applyLocked takes a full set read from Nacos with its lastRefTime.
func (s *subscription) applyLocked(eps []registry.Endpoint, refTime uint64) {
	if s.known && refTime < s.refTime {
		return
	}
	s.refTime = refTime
	changed := !s.known || !registry.EqualSets(eps, s.eps)
	s.known = true
	s.eps = eps
	if s.err != nil {
		s.err = nil
		changed = true
	}
	if changed {
		s.notifyLocked()
	}
}

// failLocked records that the set cannot be read, once per outage.
func (s *subscription) failLocked(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	s.errGen++
	s.notifyLocked()
}

// watcher is a registry.Watcher on a subscription.
type watcher struct {
	r    *Registry
	st   *svcState
	sub  *subscription
	done chan struct{} // closed by Close

	// Guarded by Registry.mu.
	closed   bool
	returned bool // a set was returned since the start or the last error
	last     []registry.Endpoint
	errGen   uint64
}

// Watch implements registry.Registry. It subscribes before returning, so
// the first Next has the current set; when Nacos cannot be reached it
// still returns the watcher, whose Next reports registry.ErrUnavailable
// until the subscription is made in the background.
func (r *Registry) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, fmt.Errorf("nacos: watch: %w", err)
	}
	st, err := r.service(service)
	if err != nil {
		return nil, fmt.Errorf("nacos: watch %q: %w", service, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("nacos: watch %q: %w", service, registry.ErrClosed)
	}
	s := st.sub
	if s == nil {
		s = newSubscription()
		st.sub = s
	}
	w := &watcher{r: r, st: st, sub: s, done: make(chan struct{})}
	s.watchers[w] = struct{}{}
	r.mu.Unlock()
	if err := r.ensureSubscribed(ctx, st, s); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("nacos: watch %q: %w", service, err)
	}
	return w, nil
}

// ensureSubscribed subscribes s if it needs it. A refusal or an
// unreachable Nacos is recorded in s (and retried by the reconciler); the
// error returned is ctx's or ErrClosed.
func (r *Registry) ensureSubscribed(ctx context.Context, st *svcState, s *subscription) error {
	if err := r.lock(ctx, st); err != nil {
		return err
	}
	r.mu.Lock()
	if !s.needSub || st.sub != s {
		r.mu.Unlock()
		r.unlock(st)
		return nil
	}
	epoch := r.epoch
	r.mu.Unlock()
	req := rpc_request.NewSubscribeServiceRequest(r.cfg.Namespace, st.name, r.cfg.Group, "", true)
	_, err := r.call(ctx, req, func(resp rpc_response.IResponse, err error, _ bool) {
		r.subscribed(st, s, epoch, resp, err)
		r.mu.Lock()
		if s.err != nil {
			r.kickLocked()
		}
		r.mu.Unlock()
	})
	if ctx.Err() != nil || r.isClosed() {
		return err
	}
	return nil
}

// subscribed records the outcome of a subscribe request sent in epoch and
// releases st's lock.
func (r *Registry) subscribed(st *svcState, s *subscription, epoch uint64, resp rpc_response.IResponse, err error) {
	defer r.unlock(st)
	var info model.Service
	if err == nil {
		sr, ok := resp.(*rpc_response.SubscribeServiceResponse)
		if !ok {
			err = fmt.Errorf("subscribe answered with %T: %w", resp, registry.ErrUnavailable)
		} else {
			info = sr.ServiceInfo
		}
	}
	var eps []registry.Endpoint
	if err == nil {
		eps = r.bad.endpoints(r.cfg.Group, st.name, info.Hosts)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, registry.ErrClosed) {
		return // not sent: the reconciler subscribes if still needed
	}
	if err != nil {
		s.failLocked(fmt.Errorf("nacos: watch %q: %w", st.name, err))
		return
	}
	s.active = true
	if r.epoch == epoch {
		s.needSub = false
	}
	s.applyLocked(eps, info.LastRefTime)
	// The subscription is made even if its answer was older than a push
	// already applied: the set can be read.
	if s.err != nil {
		s.err = nil
		s.notifyLocked()
	}
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Next implements registry.Watcher.
func (w *watcher) Next(ctx context.Context) ([]registry.Endpoint, error) {
	r := w.r
	for {
		r.mu.Lock()
		if w.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("nacos: watch %q: %w", w.st.name, registry.ErrClosed)
		}
		s := w.sub
		switch {
		case s.err != nil && s.errGen != w.errGen:
			w.errGen = s.errGen
			w.returned = false // the set read after the outage is returned, changed or not
			err := s.err
			r.mu.Unlock()
			return nil, err
		case s.err == nil && s.known && (!w.returned || !registry.EqualSets(s.eps, w.last)):
			w.returned = true
			w.last = s.eps
			r.mu.Unlock()
			return cloneEndpoints(w.last), nil
		}
		changed := s.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-w.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("nacos: watch %q: %w", w.st.name, ctx.Err())
		}
	}
}

// Close implements registry.Watcher. The last watcher of a service to
// close unsubscribes, in the background.
func (w *watcher) Close() error {
	r := w.r
	r.mu.Lock()
	if w.closed {
		r.mu.Unlock()
		return nil
	}
	w.closeLocked()
	st, s := w.st, w.sub
	unsubscribe := false
	if len(s.watchers) == 0 && st.sub == s {
		st.sub = nil
		unsubscribe = s.active && !r.closed
	}
	if unsubscribe {
		r.wg.Add(1)
	}
	r.mu.Unlock()
	if unsubscribe {
		go r.unsubscribe(st)
	}
	return nil
}

func (w *watcher) closeLocked() {
	w.closed = true
	delete(w.sub.watchers, w)
	close(w.done)
}

// unsubscribe ends the Nacos subscription of st unless a new watcher has
// started meanwhile. A failure only costs pushes that nobody reads.
func (r *Registry) unsubscribe(st *svcState) {
	defer r.wg.Done()
	if err := r.lock(context.Background(), st); err != nil {
		return
	}
	defer r.unlock(st)
	r.mu.Lock()
	again := st.sub != nil
	r.mu.Unlock()
	if again {
		return
	}
	req := rpc_request.NewSubscribeServiceRequest(r.cfg.Namespace, st.name, r.cfg.Group, "", false)
	if _, err := r.do(req, r.done); err != nil {
		r.log.Debug("unsubscribe failed", zap.String("service", st.name), zap.Error(err))
	}
}

// pushHandler takes Nacos's NotifySubscriberRequest pushes.
type pushHandler struct{ r *Registry }

var _ rpc.IServerRequestHandler = pushHandler{}

func (pushHandler) Name() string { return "detour.nacos.push" }

func (h pushHandler) RequestReply(req rpc_request.IRequest, _ *rpc.RpcClient) rpc_response.IResponse {
	n, ok := req.(*rpc_request.NotifySubscriberRequest)
	if !ok {
		return nil
	}
	h.r.pushed(n.ServiceInfo)
	return &rpc_response.NotifySubscriberResponse{Response: &rpc_response.Response{ResultCode: constant.RESPONSE_CODE_SUCCESS, Success: true}}
}

// pushed applies a pushed service to its subscription, if it is one of
// ours (this group, all clusters) and still watched.
func (r *Registry) pushed(info model.Service) {
	group, name := info.GroupName, info.Name
	if g, n, ok := strings.Cut(name, constant.SERVICE_INFO_SPLITER); ok {
		group, name = g, n // Nacos 1.x style grouped name
	}
	if group != r.cfg.Group || info.Clusters != "" {
		return
	}
	r.mu.Lock()
	st := r.services[name]
	var s *subscription
	if st != nil {
		s = st.sub
	}
	r.mu.Unlock()
	if s == nil {
		return
	}
	eps := r.bad.endpoints(group, name, info.Hosts)
	r.mu.Lock()
	if st.sub == s {
		s.applyLocked(eps, info.LastRefTime)
	}
	r.mu.Unlock()
}

func cloneEndpoints(eps []registry.Endpoint) []registry.Endpoint {
	out := make([]registry.Endpoint, len(eps))
	for i, ep := range eps {
		ep.Metadata = maps.Clone(ep.Metadata)
		out[i] = ep
	}
	return out
}

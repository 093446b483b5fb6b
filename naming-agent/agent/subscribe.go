package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

var errNoAnswerYet = errors.New("the registry has not answered yet")

// subscription is one subscribed service: one registry watch for the
// whole host, however many apps ask.
type subscription struct {
	service   string
	eps       []registry.Endpoint // last known set
	known     bool                // eps came from the registry or the cache
	fromCache bool                // ... from the cache, not yet confirmed
	err       error               // last watch error, nil once the registry answers
	first     chan struct{}       // closed at the first registry result
	firstDone bool
	answer    Answer
	notify    chan struct{} // closed and replaced when answer changes
	waiters   int           // blocked HTTP queries and gRPC streams
	egress    int           // 0: none assigned
	cancel    func()        // stops the watch
	dropped   bool          // unsubscribed: waiters return, callers subscribe anew
	// lastAsked and emptySince (zero while it has endpoints) decide
	// when an unused subscription expires (unsubscribe.go).
	lastAsked, emptySince time.Time
	// The front ends' view (view.go): its revision changes with the
	// answer and with any change of eps (metadata included), which the
	// answer does not show.
	epsGen, viewGen uint64
	viewRev         uint64
	viewNotify      chan struct{} // closed and replaced when the view changes
}

// subscribeLocked returns the subscription of service, making it (and
// its watch) if needed.
func (a *Agent) subscribeLocked(service string) *subscription {
	if s := a.subs[service]; s != nil {
		return s
	}
	now := a.opts.now()
	ctx, cancel := context.WithCancel(a.ctx)
	s := &subscription{service: service, first: make(chan struct{}), notify: make(chan struct{}), viewNotify: make(chan struct{}), cancel: cancel, lastAsked: now, emptySince: now}
	egress, err := a.ports.Assign(poolEgress, service)
	if err != nil {
		a.log.Warn("no egress port: the service stays out of the mesh", zap.String("service", service), zap.Error(err))
	}
	s.egress = egress
	s.answer = a.computeAnswerLocked(s)
	s.answer.Revision = a.revBase
	a.viewSeq++
	s.viewRev = a.viewSeq
	a.subs[service] = s
	a.goLoop(func() { a.watchLoop(ctx, s) })
	a.log.Info("subscribed", zap.String("service", service), zap.Int("egress_port", egress))
	return s
}

// updateAnswerLocked recomputes s's answer and, when it changed, bumps
// the revision and wakes every waiter.
func (a *Agent) updateAnswerLocked(s *subscription) {
	a.recomputes++
	ans := a.computeAnswerLocked(s)
	same := sameContent(ans, s.answer)
	if !same || s.viewGen != s.epsGen {
		s.viewGen = s.epsGen
		a.viewSeq++
		s.viewRev = a.viewSeq
		close(s.viewNotify)
		s.viewNotify = make(chan struct{})
	}
	if same {
		return
	}
	ans.Revision = s.answer.Revision + 1
	s.answer = ans
	close(s.notify)
	s.notify = make(chan struct{})
	a.metrics.answerChanges.Inc()
}

// watchLoop follows s in the registry until ctx ends (the agent closes
// or s is unsubscribed).
func (a *Agent) watchLoop(ctx context.Context, s *subscription) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		w, err := a.reg.Watch(ctx, s.service)
		if err != nil {
			a.watchFailed(s, err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		for {
			eps, err := w.Next(ctx)
			if err == nil {
				backoff = 100 * time.Millisecond
				a.watchUpdate(s, eps)
				continue
			}
			if ctx.Err() != nil || errors.Is(err, registry.ErrClosed) {
				w.Close()
				return
			}
			a.watchFailed(s, err)
			if errors.Is(err, registry.ErrUnavailable) {
				continue // the watcher reconnects by itself
			}
			w.Close()
			break
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (a *Agent) watchUpdate(s *subscription, eps []registry.Endpoint) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.dropped {
		return
	}
	switch {
	case len(eps) > 0:
		s.emptySince = time.Time{}
	case s.emptySince.IsZero():
		s.emptySince = a.opts.now()
	}
	wasKnown := s.known
	s.eps, s.known, s.fromCache, s.err = eps, true, false, nil
	s.epsGen++
	a.firstLocked(s)
	a.setRegistryErrLocked(nil)
	a.updateSubLocked(s)
	if !wasKnown {
		// Streams waiting for anything to be known wake even when the
		// first set is empty, which leaves the answer as it was.
		close(s.notify)
		s.notify = make(chan struct{})
	}
	a.kick(a.saveWake)
}

func (a *Agent) watchFailed(s *subscription, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.dropped {
		return
	}
	if s.err == nil {
		a.log.Warn("registry watch failed; answering from the last known endpoints", zap.String("service", s.service), zap.Error(err))
	}
	s.err = err
	a.firstLocked(s)
	a.setRegistryErrLocked(err)
	a.metrics.observe(a)
}

func (a *Agent) firstLocked(s *subscription) {
	if !s.firstDone {
		s.firstDone = true
		close(s.first)
	}
}

// Resolve returns the current answer for service, subscribing the host to
// it. The first resolve of a service nothing is known of (not even from
// the cache) waits up to api.initial_wait for the registry. It fails with
// ErrUnavailable only when nothing at all is known of the service
// (registry unreachable, nothing cached).
func (a *Agent) Resolve(ctx context.Context, service string) (Answer, error) {
	return a.Wait(ctx, service, 0)
}

// Wait returns the answer for service once its revision differs from
// revision (at once for revision 0, or a revision from an older answer).
// When ctx ends first it returns the current answer: the caller's
// revision still holds.
func (a *Agent) Wait(ctx context.Context, service string, revision uint64) (Answer, error) {
	if err := registry.ValidateService(service); err != nil {
		return Answer{}, err
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return Answer{}, ErrClosed
	}
	_, existed := a.subs[service]
	s := a.subscribeLocked(service)
	if !existed {
		a.updateSubLocked(s)
	}
	s.lastAsked = a.opts.now()
	first, known := s.first, s.known
	a.mu.Unlock()

	// Something known (from the cache, at start) is answered at once: an
	// agent started with the registry down must not stall its apps for
	// initial_wait per service. The registry's answer follows to anyone
	// subscribed.
	if !known {
		t := time.NewTimer(a.cfg.API.InitialWait)
		select {
		case <-first:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	s.waiters++
	a.metrics.subscribers.Inc()
	defer func() {
		s.waiters--
		s.lastAsked = a.opts.now()
		a.metrics.subscribers.Dec()
	}()
	for {
		if a.closed {
			return Answer{}, ErrClosed
		}
		if s.dropped {
			// Unsubscribed meanwhile: the last answer; the caller's
			// next query subscribes again.
			return s.answer, nil
		}
		if !s.known {
			// Never seen, not in the cache, and the registry has not
			// answered within initial_wait: no answer is better than an
			// empty one the app would take for "no instances".
			cause := s.err
			if cause == nil {
				cause = a.regErr
			}
			if cause == nil {
				cause = errNoAnswerYet
			}
			return Answer{}, fmt.Errorf("%w: service %q: nothing known yet: %w", ErrUnavailable, service, cause)
		}
		if s.answer.Revision != revision || ctx.Err() != nil {
			return s.answer, nil
		}
		notify := s.notify
		a.mu.Unlock()
		select {
		case <-notify:
		case <-ctx.Done():
		}
		a.mu.Lock()
	}
}

// Subscribe calls send with the answer for service each time it changes,
// starting with the current one unless its revision is revision, until
// ctx ends or send fails.
func (a *Agent) Subscribe(ctx context.Context, service string, revision uint64, send func(Answer) error) error {
	for {
		ans, err := a.Wait(ctx, service, revision)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// Nothing known yet: wait for the first registry answer.
			if !a.waitKnown(ctx, service) {
				return ctx.Err()
			}
			continue
		}
		if err := send(ans); err != nil {
			return err
		}
		revision = ans.Revision
	}
}

// waitKnown blocks until service's answer changes (for one with nothing
// known: until something is).
func (a *Agent) waitKnown(ctx context.Context, service string) bool {
	a.mu.Lock()
	s := a.subs[service]
	if s == nil || s.known {
		a.mu.Unlock()
		return ctx.Err() == nil
	}
	notify := s.notify
	s.waiters++
	a.metrics.subscribers.Inc()
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		s.waiters--
		a.metrics.subscribers.Dec()
		a.mu.Unlock()
	}()
	select {
	case <-notify:
		return true
	case <-ctx.Done():
		return false
	}
}

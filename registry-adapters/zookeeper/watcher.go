package zookeeper

import (
	"context"
	"fmt"
	"sync"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// watcher follows the children of one providers node. Its goroutine (run,
// in watchloop.go) lists them and arms a one-shot ZooKeeper watch, and
// publishes each set it reads or the outage that stopped it; Next hands
// them out.
type watcher struct {
	r       *Registry
	service string
	path    string

	ready     chan struct{} // closed once there is a first set or error
	readyOnce sync.Once
	done      chan struct{} // closed by Close
	stopped   chan struct{} // closed when run returns
	closeOnce sync.Once

	mu       sync.Mutex
	closed   bool
	cur      []registry.Endpoint // latest set read; never modified
	curGen   uint64              // number of successful listings
	last     []registry.Endpoint // set last returned by Next
	returned bool                // Next has returned a set
	err      error               // outage to report, if any
	errGen   uint64              // curGen when err happened
	fresh    bool                // after an error: return the next listing, changed or not
	freshGen uint64              // ... made after this one
	notify   chan struct{}       // closed and replaced when cur or err changes

	// Owned by run.
	cache map[string]decoded
	down  bool      // an outage was reported and no listing has succeeded since
	app   *appState // an application-level service's (runApp); nil for providers
}

func newWatcher(r *Registry, service string) *watcher {
	w := &watcher{
		r:       r,
		service: service,
		path:    r.servicePath(service),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		notify:  make(chan struct{}),
		cache:   map[string]decoded{},
	}
	if _, _, ok := dubboapp.ParseServiceName(service); ok {
		w.app = &appState{kick: make(chan struct{}, 1), nodes: map[string]*instNode{}}
	}
	return w
}

// Next implements registry.Watcher.
func (w *watcher) Next(ctx context.Context) ([]registry.Endpoint, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return nil, fmt.Errorf("zookeeper: watch %q: %w", w.service, registry.ErrClosed)
		}
		// A set is pending when Next has not returned one yet, when the set
		// differs from the last one returned, or, after an error, when a
		// listing newer than the error is there. Of a pending set and a
		// pending error, the older goes first.
		have := w.curGen > 0
		pending := have && (!w.returned ||
			w.fresh && w.curGen > w.freshGen ||
			!w.fresh && !registry.EqualSets(w.cur, w.last))
		if w.err != nil && (!pending || w.curGen > w.errGen) {
			err := w.err
			w.err, w.fresh, w.freshGen = nil, true, w.errGen
			w.mu.Unlock()
			return nil, err
		}
		if pending {
			w.last, w.returned, w.fresh = w.cur, true, false
			out := cloneEndpoints(w.cur)
			w.mu.Unlock()
			return out, nil
		}
		notify := w.notify
		w.mu.Unlock()
		select {
		case <-notify:
		case <-w.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close implements registry.Watcher. It returns once the watcher's
// goroutine has stopped.
func (w *watcher) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.done)
		<-w.stopped
		w.r.removeWatcher(w)
	})
	return nil
}

func (w *watcher) publish(set []registry.Endpoint) {
	w.down = false
	w.mu.Lock()
	w.cur = set
	w.curGen++
	w.wake()
	w.mu.Unlock()
	w.readyOnce.Do(func() { close(w.ready) })
}

// outage records err for Next, once per outage.
func (w *watcher) outage(err error) {
	if !w.down {
		w.down = true
		w.mu.Lock()
		w.err, w.errGen = err, w.curGen
		w.wake()
		w.mu.Unlock()
	}
	w.readyOnce.Do(func() { close(w.ready) })
}

// wake tells Next that something changed; w.mu must be held.
func (w *watcher) wake() {
	close(w.notify)
	w.notify = make(chan struct{})
}

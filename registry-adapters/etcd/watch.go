package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// errCompacted ends a watch whose revision was compacted away: the watcher
// lists again, without reporting an outage.
var errCompacted = errors.New("revision compacted")

// watcher is a registry.Watcher. A goroutine (run) lists and watches the
// service and publishes the set under mu; Next reads it.
type watcher struct {
	r       *Registry
	log     *zap.Logger
	service string
	key     string // serviceKey of service

	ctx    context.Context // ends with Close or the Registry's Close
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu      sync.Mutex
	changed chan struct{}       // closed and replaced on every change below
	eps     []registry.Endpoint // the current set, sorted; nil until first read
	read    bool                // eps has been read at least once
	down    bool                // etcd cannot be reached; eps is the last known set
	downSeq uint64              // counts outages
	downErr error               // why, for Next

	// Next's own; Next is not called concurrently.
	started  bool
	last     []registry.Endpoint
	seenDown uint64 // downSeq of the last outage Next reported
	resend   bool   // return the set after an outage even if unchanged
}

// Watch starts watching service; see registry.Registry. It does not wait
// for etcd: the first Next returns the set once it has been read, or an
// error wrapping registry.ErrUnavailable if etcd cannot be reached. The
// watch lasts until the watcher or the Registry is closed; ctx only
// bounds this call.
func (r *Registry) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, fmt.Errorf("etcd: watch: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcd: watch %q: %w", service, err)
	}
	w := &watcher{
		r:       r,
		log:     r.log.With(zap.String("service", service)),
		service: service,
		key:     serviceKey(r.cfg.Prefix, service),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("etcd: watch %q: %w", service, registry.ErrClosed)
	}
	// The watch lives as long as the watcher, not as long as ctx.
	w.ctx, w.cancel = context.WithCancel(r.ctx)
	r.watchers[w] = struct{}{}
	r.mu.Unlock()
	go w.run()
	return w, nil
}

// Next returns the current set; see registry.Watcher.
func (w *watcher) Next(ctx context.Context) ([]registry.Endpoint, error) {
	for {
		if w.ctx.Err() != nil {
			return nil, fmt.Errorf("etcd: watch %q: %w", w.service, registry.ErrClosed)
		}
		w.mu.Lock()
		eps, read, down, downSeq, downErr, changed := w.eps, w.read, w.down, w.downSeq, w.downErr, w.changed
		w.mu.Unlock()
		switch {
		case down && downSeq != w.seenDown:
			w.seenDown, w.resend = downSeq, true
			return nil, fmt.Errorf("etcd: watch %q: %w: %w", w.service, registry.ErrUnavailable, downErr)
		case read && !down && (!w.started || w.resend || !registry.EqualSets(eps, w.last)):
			w.started, w.resend, w.last = true, false, eps
			return cloneSet(eps), nil
		}
		select {
		case <-changed:
		case <-w.ctx.Done():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops the watch and waits for its goroutine; see registry.Watcher.
func (w *watcher) Close() error {
	w.cancel()
	<-w.done
	w.r.mu.Lock()
	delete(w.r.watchers, w)
	w.r.mu.Unlock()
	return nil
}

// run lists and watches until the watcher is closed, listing again after
// every failure.
func (w *watcher) run() {
	defer close(w.done)
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		eps, rev, err := w.list()
		if err == nil {
			started := time.Now()
			err = w.follow(eps, rev+1)
			if time.Since(started) > bo.max {
				bo.reset() // it worked for a while: a new failure starts afresh
			}
			if errors.Is(err, errCompacted) && w.ctx.Err() == nil {
				w.log.Info("watch revision compacted, listing again", zap.Error(err))
				continue
			}
		}
		if w.ctx.Err() != nil {
			return
		}
		d := bo.next()
		w.setDown(err, d)
		if !sleepCtx(w.ctx, d) {
			return
		}
	}
}

// list reads the service and publishes the set.
func (w *watcher) list() (map[string]registry.Endpoint, int64, error) {
	ctx, cancel := context.WithTimeout(w.ctx, w.r.cfg.RequestTimeout)
	defer cancel()
	eps, rev, err := w.r.fetch(ctx, w.service)
	if err != nil {
		return nil, 0, fmt.Errorf("list: %w", err)
	}
	w.publish(eps)
	return eps, rev, nil
}

// follow applies the events from rev on to eps and publishes each new set,
// until the watch fails or the connection to etcd is lost.
func (w *watcher) follow(eps map[string]registry.Endpoint, rev int64) error {
	// WithRequireLeader: a member cut off from the leader ends the watch
	// instead of serving it from stale data.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(w.ctx))
	defer cancel()
	// The client's Watch blocks, and a broken watch stays silent, for as
	// long as etcd cannot be reached: end both when the connection fails.
	lost := w.r.conn.lost()
	defer context.AfterFunc(lost, cancel)()
	wch := w.r.client.Watch(ctx, w.key, clientv3.WithPrefix(), clientv3.WithRev(rev))
	for resp := range wch {
		switch {
		case resp.CompactRevision != 0:
			return fmt.Errorf("%w: watch from %d, compacted up to %d", errCompacted, rev, resp.CompactRevision)
		case resp.Err() != nil:
			return fmt.Errorf("watch: %w", resp.Err())
		case resp.Canceled:
			return errors.New("watch canceled by etcd")
		}
		if len(resp.Events) == 0 {
			continue
		}
		for _, ev := range resp.Events {
			w.apply(eps, ev)
		}
		rev = resp.Header.Revision + 1
		w.publish(eps)
	}
	if lost.Err() != nil {
		return errors.New("connection to etcd lost")
	}
	return errors.New("watch channel closed")
}

// apply applies one event to eps, reporting a malformed entry.
func (w *watcher) apply(eps map[string]registry.Endpoint, ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	if ev.Type == clientv3.EventTypeDelete {
		delete(eps, key)
		w.r.bad.deleted(w.service, key, ev.Kv.ModRevision)
		return
	}
	ep, err := decodeEntry(w.r.cfg.Prefix, w.service, ev.Kv.Key, ev.Kv.Value)
	if err != nil {
		delete(eps, key)
		w.r.bad.put(w.service, badEntry{key: key, value: ev.Kv.Value, create: ev.Kv.CreateRevision, mod: ev.Kv.ModRevision, err: err})
		return
	}
	eps[key] = ep
}

// publish makes eps the current set and marks etcd reachable.
func (w *watcher) publish(eps map[string]registry.Endpoint) {
	set := sortedSet(eps)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.read && !w.down && registry.EqualSets(set, w.eps) {
		return
	}
	if w.down {
		w.log.Info("watch resumed")
	}
	w.eps, w.read, w.down = set, true, false
	close(w.changed)
	w.changed = make(chan struct{})
}

// setDown records an outage; Next reports it once.
func (w *watcher) setDown(err error, retryIn time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		w.log.Debug("watch still failing", zap.Error(err), zap.Duration("retry_in", retryIn))
		return
	}
	w.log.Warn("watch failed, retrying", zap.Error(err), zap.Duration("retry_in", retryIn))
	w.down, w.downErr = true, err
	w.downSeq++
	close(w.changed)
	w.changed = make(chan struct{})
}

// cloneSet copies a set, metadata maps included, so callers may change
// what Next returns.
func cloneSet(eps []registry.Endpoint) []registry.Endpoint {
	out := make([]registry.Endpoint, len(eps))
	for i, ep := range eps {
		ep.Metadata = maps.Clone(ep.Metadata)
		out[i] = ep
	}
	return out
}

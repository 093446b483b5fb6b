package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// entryWatch follows one service in the registry through a client of its
// own, as any reader of the registry would, and records every interval
// with no instance and every change of the registered addresses.
// Watcher.Next returns the full set each time, so nothing between two
// sets is lost but a change undone before the adapter re-lists.
type entryWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	first  chan struct{} // closed once the first set is in

	mu      sync.Mutex // guards what follows; held by run and summary
	present bool
	since   time.Time // when the current absence began
	gaps    []gap
	addrs   string // the last non-empty set, comma-separated
	changes []change
	errs    []string
}

type gap struct {
	from, to time.Time
	open     bool // still missing when the watch stopped
}

type change struct {
	at       time.Time
	from, to string
}

// watchEntry starts watching service and returns once the first set is
// in; t.Cleanup stops it.
func watchEntry(t *testing.T, reg registry.Registry, service string) *entryWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := reg.Watch(ctx, service)
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", service, err)
	}
	e := &entryWatch{cancel: cancel, done: make(chan struct{}), first: make(chan struct{})}
	go e.run(ctx, w)
	t.Cleanup(e.stop)
	select {
	case <-e.first:
	case <-time.After(20 * time.Second):
		t.Fatalf("watch %s: no first set in 20s", service)
	}
	return e
}

func (e *entryWatch) run(ctx context.Context, w registry.Watcher) {
	defer close(e.done)
	defer w.Close()
	first := true
	for {
		eps, err := w.Next(ctx)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.mu.Lock()
			e.errs = append(e.errs, fmt.Sprintf("%s: %v", now.Format("15:04:05.000"), err))
			e.mu.Unlock()
			if errors.Is(err, registry.ErrUnavailable) {
				continue // transient: the watcher reconnects by itself
			}
			return
		}
		e.observe(now, eps)
		if first {
			first = false
			close(e.first)
		}
	}
}

func (e *entryWatch) observe(now time.Time, eps []registry.Endpoint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(eps) == 0 {
		if e.present || e.since.IsZero() {
			e.present, e.since = false, now
		}
		return
	}
	if !e.present && !e.since.IsZero() {
		e.gaps = append(e.gaps, gap{from: e.since, to: now})
	}
	e.present = true
	addrs := make([]string, len(eps))
	for i, ep := range eps {
		addrs[i] = ep.Addr
	}
	set := strings.Join(addrs, ",")
	if e.addrs != "" && set != e.addrs {
		e.changes = append(e.changes, change{now, e.addrs, set})
	}
	e.addrs = set
}

func (e *entryWatch) stop() {
	e.cancel()
	<-e.done
}

// entrySummary is what the watch saw, the intervals closed at the stop.
type entrySummary struct {
	gaps    []gap
	changes []change
	errs    []string
	last    string // the last non-empty set
}

func (e *entryWatch) summary() entrySummary {
	e.stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	s := entrySummary{gaps: append([]gap(nil), e.gaps...), changes: e.changes, errs: e.errs, last: e.addrs}
	if !e.present {
		s.gaps = append(s.gaps, gap{e.since, time.Now(), true})
	}
	return s
}

// longest is the longest interval with no instance.
func (s entrySummary) longest() time.Duration {
	var d time.Duration
	for _, g := range s.gaps {
		d = max(d, g.to.Sub(g.from))
	}
	return d
}

// describe writes the gaps and changes with their times relative to t0.
func (s entrySummary) describe(t0 time.Time) string {
	var b strings.Builder
	rel := func(at time.Time) string { return fmt.Sprintf("%+.1fs", at.Sub(t0).Seconds()) }
	for _, g := range s.gaps {
		if g.open {
			fmt.Fprintf(&b, " missing from %s, still at the end (%s);", rel(g.from), rel(g.to))
			continue
		}
		fmt.Fprintf(&b, " missing %s..%s;", rel(g.from), rel(g.to))
	}
	for _, c := range s.changes {
		fmt.Fprintf(&b, " address %s -> %s at %s;", c.from, c.to, rel(c.at))
	}
	return strings.TrimSuffix(b.String(), ";")
}

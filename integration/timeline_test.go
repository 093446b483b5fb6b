package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// timeline records every state a watched thing went through and when
// each was seen, so a test can ask, after an event, how long the first
// state it expected took to show, without polling: the watch delivers,
// the timeline keeps. A watcher goroutine adds; the test waits.
type timeline[T any] struct {
	mu      sync.Mutex // guards what follows; held by add, fail and wait
	states  []stamped[T]
	err     error
	changed chan struct{} // closed and replaced at each add or fail
}

type stamped[T any] struct {
	at time.Time
	v  T
}

func newTimeline[T any]() *timeline[T] {
	return &timeline[T]{changed: make(chan struct{})}
}

func (tl *timeline[T]) add(at time.Time, v T) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.states = append(tl.states, stamped[T]{at, v})
	close(tl.changed)
	tl.changed = make(chan struct{})
}

// fail ends the timeline: wait reports err from then on.
func (tl *timeline[T]) fail(err error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.err == nil {
		tl.err = err
		close(tl.changed)
		tl.changed = make(chan struct{})
	}
}

// wait returns the first state seen at or after since for which cond
// holds, and when it was seen; it fails the test after d.
func (tl *timeline[T]) wait(t *testing.T, since time.Time, d time.Duration, what string, cond func(T) bool) (T, time.Time) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for i := 0; ; {
		tl.mu.Lock()
		for ; i < len(tl.states); i++ {
			if s := tl.states[i]; !s.at.Before(since) && cond(s.v) {
				tl.mu.Unlock()
				return s.v, s.at
			}
		}
		err, changed := tl.err, tl.changed
		var last T
		if n := len(tl.states); n > 0 {
			last = tl.states[n-1].v
		}
		tl.mu.Unlock()
		if err != nil {
			t.Fatalf("waiting for %s: the watch failed: %v", what, err)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s (last seen: %v)", d, what, last)
		}
	}
}

// watchChildren follows the children of path on the ZooKeeper server at
// addr (an agent's front end, as a consumer app reads it) with one-shot
// child watches set again at each event. A state's time is when the
// event that led to it arrived (the first: when it was read).
// t.Cleanup closes the session.
func watchChildren(t *testing.T, addr, path string) *timeline[[]string] {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	tl := newTimeline[[]string]()
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	go func() {
		defer close(done)
		at := time.Now()
		for {
			kids, _, w, err := conn.ChildrenW(path)
			if err != nil {
				tl.fail(fmt.Errorf("getChildren %s on %s: %w", path, addr, err))
				return
			}
			tl.add(at, kids)
			ev, ok := <-w.EvtCh
			at = time.Now()
			if !ok || ev.Err != nil || ev.Type == zk.EventNotWatching {
				tl.fail(fmt.Errorf("child watch of %s on %s ended: %+v", path, addr, ev))
				return
			}
		}
	}()
	return tl
}

// quietZK drops go-zookeeper's log lines (they would outlive the test).
type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

// watchRegistry follows service in the registry through reg, as any
// reader of the registry would; t.Cleanup stops it.
func watchRegistry(t *testing.T, reg registry.Registry, service string) *timeline[[]registry.Endpoint] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := reg.Watch(ctx, service)
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", service, err)
	}
	tl := newTimeline[[]registry.Endpoint]()
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		defer w.Close()
		for {
			eps, err := w.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, registry.ErrUnavailable) {
					continue // transient: the watcher reconnects by itself
				}
				tl.fail(err)
				return
			}
			tl.add(time.Now(), eps)
		}
	}()
	return tl
}

package registrytest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

type fakeWatcher struct {
	c       *Fake
	service string

	closeOnce sync.Once
	closed    chan struct{}

	started bool
	last    []registry.Endpoint
	wasDown bool // ErrUnavailable already returned for this outage
}

func (w *fakeWatcher) Next(ctx context.Context) ([]registry.Endpoint, error) {
	for {
		select {
		case <-w.closed:
			return nil, fmt.Errorf("fake: watch %q: %w", w.service, registry.ErrClosed)
		default:
		}
		if w.c.isClosed() {
			return nil, fmt.Errorf("fake: watch %q: %w", w.service, registry.ErrClosed)
		}
		eps, bad, changed, err := w.c.srv.read(w.service)
		switch {
		case errors.Is(err, errSilent):
		case errors.Is(err, registry.ErrUnavailable):
			if !w.wasDown {
				w.wasDown = true
				return nil, fmt.Errorf("fake: watch %q: %w", w.service, err)
			}
		case err != nil:
			return nil, err
		default:
			w.c.report(w.service, bad)
			if !w.started || w.wasDown || !registry.EqualSets(eps, w.last) {
				w.started, w.last, w.wasDown = true, eps, false
				return eps, nil
			}
		}
		select {
		case <-changed:
		case <-w.closed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (w *fakeWatcher) Close() error {
	w.closeOnce.Do(func() { close(w.closed) })
	return nil
}

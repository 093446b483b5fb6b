// Package frontendtest helps test registry front ends: FakeCore is a
// frontend.Core in memory whose views a test sets.
package frontendtest

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// FakeCore is a frontend.Core in memory: publications by service (a
// publication of another front end's owner is refused, one of the same
// front end taken over, as the agent does) and a view per service the
// test sets with SetView. Safe for concurrent use.
type FakeCore struct {
	mu    sync.Mutex
	pubs  map[string]frontend.Publication
	views map[string]frontend.View
	wake  chan struct{}
	// PublishErr, when set, is returned by every Publish.
	PublishErr error
}

// NewFakeCore returns an empty FakeCore.
func NewFakeCore() *FakeCore {
	return &FakeCore{pubs: map[string]frontend.Publication{}, views: map[string]frontend.View{}, wake: make(chan struct{})}
}

// Publish implements frontend.Core.
func (c *FakeCore) Publish(p frontend.Publication) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.PublishErr != nil {
		return c.PublishErr
	}
	if old, ok := c.pubs[p.Service]; ok && frontendOf(old.Owner) != frontendOf(p.Owner) {
		return errors.New("fakecore: service held by " + old.Owner)
	}
	c.pubs[p.Service] = p
	return nil
}

func frontendOf(owner string) string {
	f, _, _ := strings.Cut(owner, "/")
	return f
}

// Unpublish implements frontend.Core.
func (c *FakeCore) Unpublish(owner, service string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pubs[service]; !ok || p.Owner != owner {
		return frontend.ErrNotHeld
	}
	delete(c.pubs, service)
	return nil
}

// Owned implements frontend.Core.
func (c *FakeCore) Owned(prefix string) []frontend.Publication {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []frontend.Publication
	for _, p := range c.pubs {
		if strings.HasPrefix(p.Owner, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// Watch implements frontend.Core: fn gets the view set last, and each
// one set later.
func (c *FakeCore) Watch(ctx context.Context, service string, fn func(frontend.View)) error {
	var sent uint64
	for {
		c.mu.Lock()
		v, wake := c.views[service], c.wake
		c.mu.Unlock()
		if v.Revision != sent {
			sent = v.Revision
			fn(v)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SetView makes v the view of v.Service; its Revision is set to one
// more than the last.
func (c *FakeCore) SetView(v frontend.View) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v.Revision = c.views[v.Service].Revision + 1
	c.views[v.Service] = v
	close(c.wake)
	c.wake = make(chan struct{})
}

// Pub returns the publication of service.
func (c *FakeCore) Pub(service string) (frontend.Publication, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pubs[service]
	return p, ok
}

// Pubs returns how many publications there are.
func (c *FakeCore) Pubs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pubs)
}

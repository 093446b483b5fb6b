package registrytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// FakeServer is an in-memory registry server for tests of the registry's
// users: each Client is an independent session, and the test can take the
// server down, expire a session or write an entry no adapter can parse.
// It passes the conformance suite, so code tested against it behaves as
// against a real adapter.
type FakeServer struct {
	mu       sync.Mutex
	entries  map[string]map[string]fakeEntry // service -> addr -> entry
	bad      map[string]map[string]bool      // service -> raw keys that cannot be parsed
	down     bool
	silent   bool          // down, and watches hear nothing (no error either)
	changed  chan struct{} // closed and replaced on every change
	clients  map[*Fake]struct{}
	nextBad  int
	restores []*Fake // sessions lost while down, restored when up
}

type fakeEntry struct {
	ep    registry.Endpoint
	owner *Fake
}

// NewFakeServer returns an empty, reachable server.
func NewFakeServer() *FakeServer {
	return &FakeServer{
		entries: map[string]map[string]fakeEntry{},
		bad:     map[string]map[string]bool{},
		changed: make(chan struct{}),
		clients: map[*Fake]struct{}{},
	}
}

// Client opens a new session. onMalformed may be nil.
func (s *FakeServer) Client(onMalformed registry.MalformedFunc) *Fake {
	c := &Fake{srv: s, onMalformed: onMalformed, mine: map[key]registry.Endpoint{}, reported: map[string]bool{}}
	s.mu.Lock()
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	return c
}

// SetDown makes the server unreachable (every call returns ErrUnavailable,
// every watcher reports it) or reachable again. Entries are kept, as a
// partitioned registry keeps them.
func (s *FakeServer) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
	if !down {
		for _, c := range s.restores {
			s.restoreLocked(c)
		}
		s.restores = nil
	}
	s.notifyLocked()
}

// SetSilent makes the server unreachable as a partition that drops
// packets is: watches report nothing at all, not even an error, until it
// is reachable again (calls fail with ErrUnavailable, as after their
// timeout). It is how an agent sees a registry down before any timeout
// fired.
func (s *FakeServer) SetSilent(silent bool) {
	s.mu.Lock()
	s.silent = silent
	s.mu.Unlock()
	s.SetDown(silent)
}

// ExpireSession drops c's session: its entries vanish, and c writes them
// again by itself, at once or when the server is reachable again.
func (s *FakeServer) ExpireSession(c *Fake) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked(c)
	s.notifyLocked()
	if s.down {
		s.restores = append(s.restores, c)
		return
	}
	s.restoreLocked(c)
	s.notifyLocked()
}

// WriteMalformed stores an entry under service that no client can parse
// and returns its key.
func (s *FakeServer) WriteMalformed(service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextBad++
	k := fmt.Sprintf("%s/garbage-%d", service, s.nextBad)
	if s.bad[service] == nil {
		s.bad[service] = map[string]bool{}
	}
	s.bad[service][k] = true
	s.notifyLocked()
	return k
}

func (s *FakeServer) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *FakeServer) dropLocked(c *Fake) {
	for svc, m := range s.entries {
		for addr, e := range m {
			if e.owner == c {
				delete(m, addr)
			}
		}
		if len(m) == 0 {
			delete(s.entries, svc)
		}
	}
}

func (s *FakeServer) restoreLocked(c *Fake) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for _, ep := range c.mine {
		s.putLocked(ep, c)
	}
}

func (s *FakeServer) putLocked(ep registry.Endpoint, owner *Fake) {
	if s.entries[ep.Service] == nil {
		s.entries[ep.Service] = map[string]fakeEntry{}
	}
	s.entries[ep.Service][ep.Addr] = fakeEntry{ep: ep, owner: owner}
}

// read returns the serving set of service and the keys of bad entries, or
// ErrUnavailable, and the channel that closes on the next change.
func (s *FakeServer) read(service string) ([]registry.Endpoint, []string, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.silent {
		return nil, nil, s.changed, errSilent
	}
	if s.down {
		return nil, nil, s.changed, fmt.Errorf("fake: %w", registry.ErrUnavailable)
	}
	eps := make([]registry.Endpoint, 0, len(s.entries[service]))
	for _, e := range s.entries[service] {
		ep := e.ep
		ep.Metadata = maps.Clone(ep.Metadata)
		eps = append(eps, ep)
	}
	registry.Sort(eps)
	return eps, slices.Sorted(maps.Keys(s.bad[service])), s.changed, nil
}

// errSilent: a watch hears nothing while the server is silent.
var errSilent = errors.New("fake: silent")

type key struct{ service, addr string }

// Fake is one client session of a FakeServer; it implements
// registry.Registry.
type Fake struct {
	srv         *FakeServer
	onMalformed registry.MalformedFunc

	mu       sync.Mutex
	closed   bool
	mine     map[key]registry.Endpoint
	reported map[string]bool
}

var _ registry.Registry = (*Fake)(nil)

// Register implements registry.Registry.
func (c *Fake) Register(ctx context.Context, ep registry.Endpoint) error {
	ep, err := ep.Normalized()
	if err != nil {
		return fmt.Errorf("fake: register: %w", err)
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("fake: register: %w", registry.ErrClosed)
	}
	if s.down {
		return fmt.Errorf("fake: register %v: %w", ep, registry.ErrUnavailable)
	}
	c.mine[key{ep.Service, ep.Addr}] = ep
	s.putLocked(ep, c)
	s.notifyLocked()
	return nil
}

// Deregister implements registry.Registry.
func (c *Fake) Deregister(ctx context.Context, service, addr string) error {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("fake: deregister: %w", registry.ErrClosed)
	}
	k := key{service, addr}
	if _, ok := c.mine[k]; !ok {
		return fmt.Errorf("fake: deregister %s@%s: %w", service, addr, registry.ErrNotFound)
	}
	if s.down {
		return fmt.Errorf("fake: deregister %s@%s: %w", service, addr, registry.ErrUnavailable)
	}
	delete(c.mine, k)
	if e, ok := s.entries[service][addr]; ok && e.owner == c {
		delete(s.entries[service], addr)
	}
	s.notifyLocked()
	return nil
}

// List implements registry.Registry.
func (c *Fake) List(ctx context.Context, service string) ([]registry.Endpoint, error) {
	if err := c.check(service); err != nil {
		return nil, fmt.Errorf("fake: list: %w", err)
	}
	eps, bad, _, err := c.srv.read(service)
	if errors.Is(err, errSilent) {
		return nil, fmt.Errorf("fake: list: %w", registry.ErrUnavailable)
	}
	if err != nil {
		return nil, err
	}
	c.report(service, bad)
	return eps, nil
}

// Watch implements registry.Registry.
func (c *Fake) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if err := c.check(service); err != nil {
		return nil, fmt.Errorf("fake: watch: %w", err)
	}
	return &fakeWatcher{c: c, service: service, closed: make(chan struct{})}, nil
}

// Close implements registry.Registry.
func (c *Fake) Close() error {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	s.dropLocked(c)
	delete(s.clients, c)
	s.notifyLocked()
	return nil
}

func (c *Fake) check(service string) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return registry.ErrClosed
	}
	return registry.ValidateService(service)
}

func (c *Fake) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Fake) report(service string, bad []string) {
	for _, k := range bad {
		c.mu.Lock()
		seen := c.reported[k]
		c.reported[k] = true
		c.mu.Unlock()
		if !seen && c.onMalformed != nil {
			c.onMalformed(service, k, fmt.Errorf("fake: entry %q: unparseable", k))
		}
	}
}

// Package cluster holds one service's remote endpoints, their stage-2
// health and outlier state, and picks an endpoint for each connection or
// request: least-request with power-of-two choices (default) or round
// robin, both weighted.
//
// The set of endpoints to pick from is rebuilt only when something
// changes (a snapshot, a health verdict, an ejection or its end) and
// published through an atomic pointer, so Pick takes no lock.
//
// Precedence: an endpoint is picked only when active checking says it is
// routable (Healthy or Bypass) and it is not ejected. Below
// PanicThreshold percent of such endpoints, every endpoint is picked
// from. See sidecar/README.md for how active checks and ejection combine.
package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/route"
	"github.com/detourmesh/detour/sidecar/stats"
)

// ErrNoEndpoint: the cluster has no endpoint to send to.
var ErrNoEndpoint = errors.New("no endpoint")

// Policy is the load-balancing policy.
type Policy string

// Policies.
const (
	LeastRequest Policy = "least_request"
	RoundRobin   Policy = "round_robin"
)

// Config is how the cluster balances.
type Config struct {
	Policy         Policy
	PanicThreshold int // percent
	Outlier        outlier.Config
}

// Cluster is one service's endpoints. Safe for concurrent use.
type Cluster struct {
	Name  string
	Stats stats.Counters

	now func() time.Time
	det *outlier.Detector

	mu     sync.Mutex
	cfg    Config
	eps    []*Endpoint
	set    atomic.Pointer[pickSet]
	rr     atomic.Uint64
	policy atomic.Value // Policy
	routes atomic.Pointer[route.Table]
}

type pickSet struct {
	eps    []*Endpoint
	cum    []uint64 // weighted prefix sums
	total  uint64
	rrCum  []uint64 // prefix sums of weights divided by their gcd
	rrTot  uint64
	expiry time.Time // when an ejection ends; zero: none
	panic  bool
	// subsets: the routes' subsets of eps, by name (see subset.go).
	subsets map[string]*pickSet
}

// New returns an empty cluster; now is the clock.
func New(name string, cfg Config, now func() time.Time) *Cluster {
	c := &Cluster{Name: name, now: now, cfg: cfg, det: outlier.NewDetector(cfg.Outlier, now)}
	c.policy.Store(cfg.Policy)
	c.set.Store(&pickSet{})
	return c
}

// Update sets the configuration and the endpoints. Endpoints whose Spec
// is unchanged keep their state (health, ejection, counters).
func (c *Cluster) Update(cfg Config, specs []Spec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg = cfg
	c.policy.Store(cfg.Policy)
	c.det.SetConfig(cfg.Outlier)
	old := make(map[Spec]*Endpoint, len(c.eps))
	for _, e := range c.eps {
		old[e.Spec] = e
	}
	eps := make([]*Endpoint, 0, len(specs))
	for _, s := range specs {
		if e, ok := old[s]; ok {
			eps = append(eps, e)
			delete(old, s)
			continue
		}
		eps = append(eps, &Endpoint{Spec: s, Meta: ParseLabels(s.Labels)})
	}
	for _, e := range old {
		c.det.Remove(&e.Outlier)
	}
	c.eps = eps
	c.det.SetTotal(len(eps))
	c.rebuildLocked()
}

// Endpoints returns the current endpoints.
func (c *Cluster) Endpoints() []*Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Endpoint(nil), c.eps...)
}

// Panicking says whether too few endpoints are healthy, so all are used.
func (c *Cluster) Panicking() bool {
	c.refresh()
	return c.set.Load().panic
}

// SetHealth records a stage-2 verdict. A change from not routable to
// routable ends an ejection early: the active check saw the endpoint
// down and back, which is newer evidence than the failures that ejected
// it. It reports whether the state changed.
func (c *Cluster) SetHealth(e *Endpoint, h Health) bool {
	old := Health(e.health.Swap(int32(h)))
	if old == h {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !old.Routable() && h.Routable() && old != Unknown {
		c.det.Uneject(&e.Outlier)
	}
	c.rebuildLocked()
	return true
}

// Success reports a good outcome on e.
func (c *Cluster) Success(e *Endpoint) { c.det.Success(&e.Outlier) }

// Failure reports a failure of kind k (a stats kind) on e and reports
// whether it ejected e.
func (c *Cluster) Failure(e *Endpoint, k int) bool {
	e.Stats.Fail(k)
	c.Stats.Fail(k)
	if !c.det.Failure(&e.Outlier) {
		return false
	}
	c.mu.Lock()
	c.rebuildLocked()
	c.mu.Unlock()
	return true
}

// Pick chooses an endpoint, not exclude if another one can be had.
func (c *Cluster) Pick(exclude *Endpoint) (*Endpoint, error) {
	return c.pickIn(c.refresh(), exclude)
}

func (c *Cluster) pickIn(s *pickSet, exclude *Endpoint) (*Endpoint, error) {
	n := len(s.eps)
	switch {
	case n == 0:
		return nil, fmt.Errorf("cluster %s: %w", c.Name, ErrNoEndpoint)
	case n == 1:
		if s.eps[0] == exclude {
			return nil, fmt.Errorf("cluster %s: no other endpoint: %w", c.Name, ErrNoEndpoint)
		}
		return s.eps[0], nil
	}
	for range 4 {
		e := c.pickFrom(s)
		if e != exclude {
			return e, nil
		}
	}
	for _, e := range s.eps {
		if e != exclude {
			return e, nil
		}
	}
	return nil, fmt.Errorf("cluster %s: %w", c.Name, ErrNoEndpoint)
}

func (c *Cluster) pickFrom(s *pickSet) *Endpoint {
	if c.policy.Load().(Policy) == RoundRobin {
		i := c.rr.Add(1) % s.rrTot
		return s.eps[search(s.rrCum, i)]
	}
	a := s.eps[search(s.cum, rand.Uint64N(s.total))]
	b := s.eps[search(s.cum, rand.Uint64N(s.total))]
	if b.Active() < a.Active() {
		return b
	}
	return a
}

// search returns the index of the first prefix sum above x.
func search(cum []uint64, x uint64) int {
	lo, hi := 0, len(cum)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cum[m] <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Sweep ends ejections whose time is up and reports whether any did;
// Pick does the same lazily, Sweep lets status follow without traffic.
func (c *Cluster) Sweep() bool {
	s := c.set.Load()
	if s.expiry.IsZero() || c.now().Before(s.expiry) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebuildLocked()
	return true
}

// refresh rebuilds the set when an ejection has ended.
func (c *Cluster) refresh() *pickSet {
	s := c.set.Load()
	if s.expiry.IsZero() || c.now().Before(s.expiry) {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebuildLocked()
	return c.set.Load()
}

func (c *Cluster) rebuildLocked() {
	hosts := make([]*outlier.Host, len(c.eps))
	for i, e := range c.eps {
		hosts[i] = &e.Outlier
	}
	_, next := c.det.Sweep(hosts)
	s := &pickSet{expiry: next}
	for _, e := range c.eps {
		if e.Health().Routable() && !e.Outlier.Ejected() {
			s.eps = append(s.eps, e)
		}
	}
	if len(c.eps) > 0 && len(s.eps)*100 < c.cfg.PanicThreshold*len(c.eps) {
		s.eps, s.panic = append([]*Endpoint(nil), c.eps...), true
	}
	s.weigh()
	s.subsets = subsets(c.routes.Load(), s.eps)
	c.set.Store(s)
}

// weigh fills the prefix sums of s.eps's weights.
func (s *pickSet) weigh() {
	var g uint64
	for _, e := range s.eps {
		g = gcd(g, uint64(max(e.Weight, 1)))
	}
	for _, e := range s.eps {
		w := uint64(max(e.Weight, 1))
		s.total += w
		s.cum = append(s.cum, s.total)
		s.rrTot += w / g
		s.rrCum = append(s.rrCum, s.rrTot)
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/naming-agent/internal/portalloc"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Port pools.
const (
	poolIngress = "ingress"
	poolEgress  = "egress"
)

// Option configures New.
type Option func(*options)

type options struct {
	logger  *zap.Logger
	now     func() time.Time
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	ready   func(ctx context.Context, adminAddr string) error
	metrics *Metrics
	free    func(pool string, port int) bool
}

// WithLogger sets the logger; the agent logs under "agent". Default: none.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock (timestamps, the stream grace, revisions).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithDialer sets the dialer of the agent's own app check.
func WithDialer(d func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.dial = d }
}

// WithReadyProbe replaces the sidecar probe (default: GET
// http://ADMIN/ready, 200 means ready).
func WithReadyProbe(p func(ctx context.Context, adminAddr string) error) Option {
	return func(o *options) { o.ready = p }
}

// WithMetrics makes the agent count into m (see NewMetrics); by default
// it makes its own.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithPortProbe replaces the check that a new port is free (default: bind
// it on the host or egress IP).
func WithPortProbe(free func(pool string, port int) bool) Option {
	return func(o *options) { o.free = free }
}

// Agent is the naming agent's state owner. All methods are safe for
// concurrent use.
type Agent struct {
	cfg     config.Config
	reg     registry.Registry
	log     *zap.Logger
	opts    options
	ports   *portalloc.Allocator
	metrics *Metrics
	revBase uint64
	// reserved are the agent's own ports, never published (policy.go).
	reserved []reservedPort

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	pubs   map[string]*publication
	// registered is what the registry holds for us, as the registrar
	// last made it.
	registered map[regKey]registry.Endpoint
	// adopted is what an earlier run registered and the resumed session
	// still held at start (adoptLocked); kept as is until the sidecar's
	// state is settled.
	adopted    map[regKey]bool
	subs       map[string]*subscription
	meshFlag   map[string]bool // run-time overrides of the config's mesh flag
	gov        savedRules      // run-time routes and limits (governance.go)
	sc         sidecarState
	snap       *sidecarpb.Snapshot // desired data plane, current version
	snapWake   chan struct{}       // closed when snap may have changed
	snapDirty  bool                // snap must be rebuilt before it is sent
	snapNext   time.Time           // no rebuild before this (see restFactor)
	regWake    chan struct{}       // buffered 1: the registrar has work
	saveWake   chan struct{}       // buffered 1: the cache should be written
	probeNow   chan struct{}       // buffered 1: probe the sidecar at once
	regErr     error
	regSince   time.Time
	viewSeq    uint64 // the last view revision handed out, any service
	recomputes int    // answers computed by updateAnswerLocked, for tests
	snapBuilds int    // snapshots built by currentSnapLocked, for tests
}

// New builds an agent on reg, loads its data dir (port assignment, mesh
// flags, endpoint cache) and starts its loops. cfg must be valid. Close
// stops it; reg stays the caller's to close.
func New(cfg config.Config, reg registry.Registry, opts ...Option) (*Agent, error) {
	o := options{logger: zap.NewNop(), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dial == nil {
		var d net.Dialer
		o.dial = d.DialContext
	}
	if o.ready == nil {
		o.ready = httpReady(cfg.Sidecar.ProbeTimeout)
	}
	if o.metrics == nil {
		o.metrics = NewMetrics()
	}
	if o.free == nil {
		o.free = portalloc.BindFree(map[string]string{poolIngress: cfg.HostIP, poolEgress: cfg.Ports.EgressIP})
	}
	log := o.logger.Named("agent")
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	ports, err := portalloc.Open(portalloc.Config{
		Path: filepath.Join(cfg.DataDir, "ports.json"),
		Ranges: map[string]portalloc.Range{
			poolIngress: {From: cfg.Ports.Ingress.From, To: cfg.Ports.Ingress.To},
			poolEgress:  {From: cfg.Ports.Egress.From, To: cfg.Ports.Egress.To},
		},
		Free: o.free,
		Warn: func(err error) { log.Warn("port assignment", zap.Error(err)) },
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	saved, err := loadPublications(publicationsPath(cfg.DataDir), log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{
		cfg: cfg, reg: reg, log: log, opts: o, ports: ports, metrics: o.metrics,
		revBase:    uint64(o.now().UnixMilli()),
		reserved:   reservedPorts(cfg),
		viewSeq:    uint64(o.now().UnixMilli()),
		ctx:        ctx,
		cancel:     cancel,
		pubs:       map[string]*publication{},
		registered: map[regKey]registry.Endpoint{},
		subs:       map[string]*subscription{},
		meshFlag:   loadMeshFlags(cfg.DataDir, log),
		gov:        loadGovernance(cfg.DataDir, log),
		snapWake:   make(chan struct{}),
		regWake:    make(chan struct{}, 1),
		saveWake:   make(chan struct{}, 1),
		probeNow:   make(chan struct{}, 1),
	}
	a.sc = newSidecarState(cfg.Sidecar.Admin, o.now())
	a.regErr, a.regSince = errNotReached, o.now()
	a.snap = &sidecarpb.Snapshot{Version: a.revBase}
	a.mu.Lock()
	a.loadCacheLocked()
	for _, req := range saved {
		if err := a.checkPublishPort(req.Port); err != nil {
			// Saved before the policy, or before the config changed:
			// not published again, and gone from the file at the next save.
			log.Warn("saved publication refused by the publish policy", zap.String("service", req.Service), zap.Error(err))
			continue
		}
		a.addPublicationLocked(req)
	}
	a.adoptLocked()
	a.updateLocked()
	a.mu.Unlock()
	a.goLoop(a.registrarLoop)
	a.goLoop(a.cacheLoop)
	a.goLoop(a.probeLoop)
	a.goLoop(a.appCheckLoop)
	a.goLoop(a.registryProbeLoop)
	a.goLoop(a.expireLoop)
	return a, nil
}

func (a *Agent) goLoop(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// Close stops every loop and watch and writes the cache one last time. It
// does not deregister: closing the registry does that.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	for _, s := range a.subs {
		close(s.notify)
		s.notify = make(chan struct{})
		close(s.viewNotify)
		s.viewNotify = make(chan struct{})
	}
	close(a.snapWake)
	a.snapWake = make(chan struct{})
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
	_, err := a.saveCache()
	return err
}

// Metrics returns the agent's metrics (its Prometheus registry is
// Metrics.Registry).
func (a *Agent) Metrics() *Metrics { return a.metrics }

// updateLocked is the one recompute step: answers, snapshot, desired
// registrations and gauges, from the whole state. Call it after every
// change, with a.mu held.
func (a *Agent) updateLocked() { a.updateSubLocked(nil) }

// updateSubLocked is updateLocked after a change confined to subscription
// only (its endpoints, or its creation): unless the sidecar's state flips
// here, no other answer can have changed, so only that one is recomputed.
// Recomputing every answer on each of N first watch results made
// subscribing N services O(N²). A nil only recomputes all.
func (a *Agent) updateSubLocked(only *subscription) {
	wasUp := a.sc.up
	a.sc.decide(a.cfg.Sidecar, a.opts.now(), a.onSidecarTransitionLocked)
	a.updateHealthSourcesLocked()
	if only != nil && a.sc.up == wasUp {
		a.updateAnswerLocked(only)
	} else {
		for _, s := range a.subs {
			a.updateAnswerLocked(s)
		}
	}
	a.updateSnapshotLocked()
	a.kick(a.regWake)
	a.metrics.observe(a)
}

// kick signals a buffered-1 channel without blocking.
func (a *Agent) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (a *Agent) onSidecarTransitionLocked(up bool) {
	if up {
		a.log.Info("sidecar ready: the mesh carries traffic again", zap.String("admin_addr", a.sc.adminAddr))
		return
	}
	a.metrics.fallbacks.Inc()
	a.log.Warn("sidecar down: falling back to real endpoints", zap.String("admin_addr", a.sc.adminAddr), zap.Bool("connected", a.sc.connected))
}

// setRegistryErr records the outcome of a registry call.
func (a *Agent) setRegistryErrLocked(err error) {
	if err == nil {
		a.regErr = nil
		return
	}
	if a.regErr == nil {
		a.regSince = a.opts.now()
	}
	a.regErr = err
	a.metrics.registryErrors.Inc()
}

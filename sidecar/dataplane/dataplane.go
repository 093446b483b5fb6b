// Package dataplane is the sidecar's core: it applies the agent's
// snapshots to listeners, clusters and health checks, all or nothing,
// and reports status, stats and the applied config.
//
// Apply validates the whole snapshot, then binds every new listener; only
// when both succeed does it commit (swap handlers, update clusters and
// checks). A failure leaves the previous state running untouched.
package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/health"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/observe"
	"github.com/detourmesh/detour/sidecar/proxy"
	"github.com/detourmesh/detour/sidecar/route"
	"github.com/detourmesh/detour/sidecar/stats"
)

// Dataplane is the sidecar's state. Safe for concurrent use.
type Dataplane struct {
	cfg      Config
	log      *zap.Logger
	now      func() time.Time
	dial     proxy.DialFunc
	pool     *proxy.BufferPool
	lm       *listener.Manager
	lmOpt    []listener.Option // WithListen
	mon      *health.Monitor
	port     *health.Port
	check    *http.Client // stage-2 checks
	obs      *observe.Observer
	logW     io.Writer       // WithAccessLogWriter
	logClose func() error    // the access log's file, if opened
	tracer   *observe.Tracer // nil: no traces

	applyMu sync.Mutex // one Apply at a time

	mu       sync.Mutex
	applied  *sidecarpb.Snapshot
	draining bool
	closed   bool
	clusters map[string]*cluster.Cluster
	lstats   map[string]*listenerStats // by listen address
	apps     map[string]*sidecarpb.AppHealth
	changed  chan struct{}
	stop     chan struct{}
	stopped  chan struct{}
}

type listenerStats struct {
	kind, service string
	c             stats.Counters
	lim           *limit.Limiter // ingress: the service's inbound limit
}

// Option configures a Dataplane.
type Option func(*Dataplane)

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(d *Dataplane) { d.log = l } }

// WithClock sets the clock (outlier ejection times).
func WithClock(now func() time.Time) Option { return func(d *Dataplane) { d.now = now } }

// WithDial sets how upstreams are dialled.
func WithDial(f proxy.DialFunc) Option { return func(d *Dataplane) { d.dial = f } }

// New returns a dataplane that serves nothing until the first Apply.
func New(cfg Config, opts ...Option) (*Dataplane, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Dataplane{
		cfg: cfg, log: zap.NewNop(), now: time.Now,
		pool:     proxy.NewBufferPool(32 << 10),
		mon:      health.NewMonitor(),
		port:     health.NewPort(),
		clusters: map[string]*cluster.Cluster{},
		lstats:   map[string]*listenerStats{},
		apps:     map[string]*sidecarpb.AppHealth{},
		changed:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	for _, o := range opts {
		o(d)
	}
	if d.dial == nil {
		d.dial = (&net.Dialer{}).DialContext
	}
	if err := d.initObserver(); err != nil {
		return nil, err
	}
	d.check = &http.Client{Transport: &http.Transport{
		DialContext: d.dial, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute,
	}}
	d.lm = listener.New(append(d.lmOpt, listener.WithLogger(d.log))...)
	go d.sweep()
	return d, nil
}

// sweep ends ejections on time even without traffic, so that status
// follows; Pick would end them lazily anyway.
func (d *Dataplane) sweep() {
	defer close(d.stopped)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.mu.Lock()
		cls := make([]*cluster.Cluster, 0, len(d.clusters))
		for _, cl := range d.clusters {
			cls = append(cls, cl)
		}
		d.mu.Unlock()
		for _, cl := range cls {
			if cl.Sweep() {
				d.notify()
			}
		}
	}
}

// Changed is signalled (coalesced) whenever Status would change.
func (d *Dataplane) Changed() <-chan struct{} { return d.changed }

func (d *Dataplane) notify() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// AppliedVersion is the version in force, 0 before the first Apply.
func (d *Dataplane) AppliedVersion() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied.GetVersion()
}

// Ready says a snapshot is applied, its listeners are up, and the
// sidecar is not draining.
func (d *Dataplane) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied != nil && !d.draining
}

// ListenerAddr is the bound address of listen (tests use port 0).
func (d *Dataplane) ListenerAddr(listen string) net.Addr { return d.lm.Addr(listen) }

// Apply applies snap in full or not at all.
func (d *Dataplane) Apply(ctx context.Context, snap *sidecarpb.Snapshot) error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if err := validate(snap, d.cfg.HostIP); err != nil {
		return fmt.Errorf("snapshot %d: %w", snap.GetVersion(), err)
	}
	d.mu.Lock()
	if d.draining {
		d.mu.Unlock()
		return fmt.Errorf("snapshot %d: %w", snap.GetVersion(), listener.ErrClosed)
	}
	clusters := make(map[string]*cluster.Cluster, len(snap.GetClusters()))
	for _, c := range snap.GetClusters() {
		cl := d.clusters[c.GetService()]
		if cl == nil {
			cl = cluster.New(c.GetService(), d.clusterConfig(c), d.now)
		}
		clusters[c.GetService()] = cl
	}
	lstats := map[string]*listenerStats{}
	ls := func(listen, kind, service string) *stats.Counters {
		s := d.lstats[listen]
		if s == nil || s.kind != kind || s.service != service {
			s = &listenerStats{kind: kind, service: service}
		}
		lstats[listen] = s
		return &s.c
	}
	var specs []listener.Spec
	byService := map[string]*sidecarpb.Cluster{}
	for _, c := range snap.GetClusters() {
		byService[c.GetService()] = c
	}
	for _, l := range snap.GetEgress() {
		c := byService[l.GetService()]
		specs = append(specs, d.egressSpec(l, c, clusters[l.GetService()], ls(l.GetListen(), "egress", l.GetService())))
	}
	var fronted []string
	for _, l := range snap.GetIngress() {
		fronted = append(fronted, l.GetService())
		c := ls(l.GetListen(), "ingress", l.GetService())
		s := lstats[l.GetListen()]
		if s.lim == nil {
			s.lim = limit.New(d.now)
		}
		specs = append(specs, d.ingressSpec(l, c, s.lim))
	}
	if hl := snap.GetHealthListen(); hl != "" {
		specs = append(specs, listener.Spec{Listen: hl, Key: "health", New: func(a net.Addr) listener.Handler {
			return listener.NewHTTP(a, d.port, d.cfg.IdleTimeout)
		}})
	}
	d.mu.Unlock()

	if err := d.lm.Apply(specs); err != nil {
		return fmt.Errorf("snapshot %d: %w", snap.GetVersion(), err)
	}

	// Committed: nothing below can fail.
	for _, c := range snap.GetClusters() {
		clusters[c.GetService()].Update(d.clusterConfig(c), endpointSpecs(c))
		if cur := clusters[c.GetService()].Routes(); cur == nil || !proto.Equal(cur.Source(), c.GetRoutes()) {
			t, _ := route.Compile(c.GetRoutes()) // validated above; unchanged rules keep their counts
			clusters[c.GetService()].SetRoutes(t)
		}
	}
	for _, l := range snap.GetIngress() {
		lstats[l.GetListen()].lim.Set(l.GetLimit())
	}
	d.port.SetFronted(fronted)
	d.mu.Lock()
	d.applied = snap
	d.clusters = clusters
	d.lstats = lstats
	want := map[string]bool{}
	for _, a := range snap.GetAppChecks() {
		want[a.GetService()] = true
	}
	for svc := range d.apps {
		if !want[svc] {
			delete(d.apps, svc)
			d.port.ForgetApp(svc)
		}
	}
	d.mu.Unlock()
	d.mon.Set(d.targets(snap, clusters))
	d.log.Named("sidecar.dataplane").Info("snapshot applied", zap.Uint64("version", snap.GetVersion()),
		zap.Int("egress", len(snap.GetEgress())), zap.Int("ingress", len(snap.GetIngress())))
	d.notify()
	return nil
}

func (d *Dataplane) clusterConfig(c *sidecarpb.Cluster) cluster.Config {
	o := c.GetOutlier()
	oc := outlierConfig(o, d.cfg.OutlierInterval)
	return cluster.Config{
		Policy:         cluster.Policy(d.cfg.LBPolicy),
		PanicThreshold: int(o.GetPanicThreshold()),
		Outlier:        oc,
	}
}

func endpointSpecs(c *sidecarpb.Cluster) []cluster.Spec {
	out := make([]cluster.Spec, 0, len(c.GetEndpoints()))
	for _, e := range c.GetEndpoints() {
		app := e.GetAppAddr()
		if app == "" {
			app = e.GetAddr()
		}
		out = append(out, cluster.Spec{Addr: e.GetAddr(), AppAddr: app, Weight: e.GetWeight(), HealthPort: e.GetHealthPort(), Mesh: e.GetMesh(),
			Labels: cluster.LabelString(e.GetMetadata())})
	}
	return out
}

// Shutdown stops accepting everywhere, marks the sidecar not ready and
// its health port 503, lets connections and requests finish until ctx
// ends, then closes what is left and stops the checks.
func (d *Dataplane) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.draining = true
	d.mu.Unlock()
	d.port.Drain()
	d.notify()
	err := d.lm.Shutdown(ctx)
	d.mon.Close()
	d.check.CloseIdleConnections()
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.stop)
	}
	d.mu.Unlock()
	<-d.stopped
	d.obs.Close()
	if d.tracer != nil {
		tctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // ctx may be spent on the drain
		d.tracer.Shutdown(tctx)
		cancel()
	}
	if d.logClose != nil {
		d.logClose()
	}
	return err
}

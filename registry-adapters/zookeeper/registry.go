package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

var _ registry.Registry = (*Registry)(nil)

// Registry is a registry.Registry on ZooKeeper in Dubbo's layout. Its
// registrations are ephemeral nodes of one ZooKeeper session, which holds
// no watches; its watchers share a second connection, opened at the first
// Watch and replaced by a new one after each disconnect. Create it with
// New; it is safe for concurrent use.
type Registry struct {
	cfg         Config
	log         *zap.Logger
	onMalformed registry.MalformedFunc
	dialer      zk.Dialer
	conn        *zk.Conn        // the registration session; never holds a watch
	events      <-chan zk.Event // closed when the library's goroutines are done
	sess        *sessionState   // of conn
	watch       *watchConn      // the watchers' connection
	malformed   *malformedLog
	now         func() time.Time
	store       registry.SessionStore // nil: none
	hs          *handshake            // nil without a store
	adopted     []registry.Endpoint   // taken back at New; never changes
	// saveMu serializes writes to the store; savedSID is the session
	// last stored. Held by saveSession and clearSession.
	saveMu   sync.Mutex
	savedSID int64

	// writes serializes changes to registrations on the server: Register,
	// Deregister and the keeper's reconcile. A channel, so a caller's
	// context can end the wait.
	writes chan struct{}

	mu       sync.Mutex
	closed   bool
	regs     map[regKey]*registration
	orphans  map[string]struct{} // node paths to delete once connected
	stale    map[string]struct{} // nodes of the previous run to delete if the session owns them
	watchers map[*watcher]struct{}

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

type regKey struct{ service, addr string }

// registration is one endpoint this client registered, and its node.
type registration struct {
	ep         registry.Endpoint
	path       string
	data       []byte    // the node's data: an instance's JSON; nil for a provider
	registered time.Time // first registration: the URL's timestamp
}

// New returns a client of the ZooKeeper servers in cfg. It does not wait
// for a connection: the client connects, and reconnects, in the
// background, and calls wait for a session up to cfg.RequestTimeout. With
// a session in its SessionStore (WithSessionStore) it waits for the
// server's answer, up to cfg.RequestTimeout, to learn whether it got that
// session back.
func New(cfg Config, opts ...Option) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("zookeeper: config: %w", err)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	log := o.logger.Named("registry.zookeeper")
	r := &Registry{
		cfg:         cfg,
		log:         log,
		onMalformed: o.onMalformed,
		dialer:      o.dialer,
		sess:        newSessionState(),
		malformed:   newMalformedLog(),
		now:         time.Now,
		writes:      make(chan struct{}, 1),
		regs:        map[regKey]*registration{},
		orphans:     map[string]struct{}{},
		stale:       map[string]struct{}{},
		watchers:    map[*watcher]struct{}{},
		done:        make(chan struct{}),
	}
	dialer := o.dialer
	var stored *storedSession
	if o.store != nil {
		r.store, r.hs = o.store, newHandshake()
		if stored = r.loadSession(); stored != nil {
			r.hs.resume(stored.SessionID, stored.Password)
		}
		dialer = r.hs.wrap(dialer)
	}
	conn, events, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
		zk.WithDialer(dialer),
		zk.WithLogger(zkLogger{log.Sugar()}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession {
				r.sess.set(ev.State)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: connect %v: %w", cfg.Servers, err)
	}
	r.conn, r.events = conn, events
	if err := r.authenticate(conn); err != nil {
		conn.Close()
		return nil, err
	}
	if stored != nil {
		r.adopt(stored)
	}
	r.watch = newWatchConn(r)
	r.wg.Add(1)
	go r.keep()
	return r, nil
}

// Register publishes ep as the ephemeral node
// ROOT/SERVICE/providers/ENCODED_PROVIDER_URL. Registering the same
// service and address again with other weight or metadata replaces the
// node in one transaction, so watchers never see both or neither. An
// application-level service APP:PROTOCOL is Dubbo 3's instance node
// /services/APP/HOST:PORT instead, its data Curator's instance JSON
// (ep's metadata, dubbo.endpoints naming ep's port), set anew when the
// metadata changes.
func (r *Registry) Register(ctx context.Context, ep registry.Endpoint) error {
	ep, err := ep.Normalized()
	if err != nil {
		return fmt.Errorf("zookeeper: register: %w", err)
	}
	if err := r.lockWrites(ctx); err != nil {
		return fmt.Errorf("zookeeper: register %s: %w", ep, err)
	}
	defer r.unlockWrites()
	key := regKey{ep.Service, ep.Addr}
	r.mu.Lock()
	closed, old := r.closed, r.regs[key]
	r.mu.Unlock()
	if closed {
		return fmt.Errorf("zookeeper: register %s: %w", ep, registry.ErrClosed)
	}
	reg := &registration{ep: ep, registered: r.now()}
	if old != nil {
		reg.registered = old.registered
	}
	if _, _, app := dubboapp.ParseServiceName(ep.Service); app {
		reg.path, reg.data, err = instancePath(ep, reg.registered)
		if err != nil {
			return fmt.Errorf("zookeeper: register %s: %w", ep, err)
		}
	} else {
		reg.path = r.providersPath(ep.Service) + "/" + providerURL(ep, r.cfg.Protocol, reg.registered).NodeName()
	}
	if old != nil && old.path == reg.path && bytes.Equal(old.data, reg.data) {
		return nil // the node says it already
	}
	if err := r.awaitSession(ctx); err != nil {
		return fmt.Errorf("zookeeper: register %s: %w", ep, err)
	}
	r.saveSession(reg.path) // before the node exists, so a restart finds it
	switch {
	case old != nil && old.path != reg.path:
		err = r.replaceNode(old.path, reg.path, reg.data)
	case old != nil:
		err = r.setData(reg.path, reg.data)
	default:
		err = r.ensureNode(reg.path, reg.data)
	}
	if err != nil {
		if uncertain(err) {
			r.addOrphan(reg.path) // the create may have happened
		}
		return fmt.Errorf("zookeeper: register %s: %w", ep, r.classify(err))
	}
	r.mu.Lock()
	r.regs[key] = reg
	delete(r.orphans, reg.path)
	delete(r.stale, reg.path)
	r.mu.Unlock()
	return nil
}

// replaceNode swaps oldPath for newPath in one transaction. If oldPath is
// not there (its session expired and the keeper has not run yet), it
// just creates newPath.
func (r *Registry) replaceNode(oldPath, newPath string, data []byte) error {
	_, err := r.conn.Multi(
		&zk.DeleteRequest{Path: oldPath, Version: -1},
		&zk.CreateRequest{Path: newPath, Data: data, Acl: r.acl(), Flags: zk.FlagEphemeral},
	)
	if err == nil || !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return r.ensureNode(newPath, data)
}

// setData sets the data of this client's node path; a node gone (its
// session expired, the keeper has not run yet) is created again.
func (r *Registry) setData(path string, data []byte) error {
	_, err := r.conn.Set(path, data, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return r.ensureNode(path, data)
	}
	return err
}

// Deregister deletes the node of the endpoint (service, addr).
func (r *Registry) Deregister(ctx context.Context, service, addr string) error {
	if err := r.lockWrites(ctx); err != nil {
		return fmt.Errorf("zookeeper: deregister %s@%s: %w", service, addr, err)
	}
	defer r.unlockWrites()
	r.mu.Lock()
	closed, reg := r.closed, r.regs[regKey{service, addr}]
	r.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("zookeeper: deregister %s@%s: %w", service, addr, registry.ErrClosed)
	case reg == nil:
		return fmt.Errorf("zookeeper: deregister %s@%s: %w", service, addr, registry.ErrNotFound)
	}
	if err := r.awaitSession(ctx); err != nil {
		return fmt.Errorf("zookeeper: deregister %s@%s: %w", service, addr, err)
	}
	if err := r.conn.Delete(reg.path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zookeeper: deregister %s@%s: %w", service, addr, r.classify(err))
	}
	r.mu.Lock()
	delete(r.regs, regKey{service, addr})
	r.mu.Unlock()
	r.saveSession("")
	return nil
}

// List reads the providers of service once.
func (r *Registry) List(ctx context.Context, service string) ([]registry.Endpoint, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, fmt.Errorf("zookeeper: list: %w", err)
	}
	if r.isClosed() {
		return nil, fmt.Errorf("zookeeper: list %q: %w", service, registry.ErrClosed)
	}
	if err := r.awaitSession(ctx); err != nil {
		return nil, fmt.Errorf("zookeeper: list %q: %w", service, err)
	}
	children, stat, err := r.conn.Children(r.servicePath(service))
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("zookeeper: list %q: %w", service, r.classify(err))
	}
	if _, _, app := dubboapp.ParseServiceName(service); app {
		nodes := make(map[string]*instNode, len(children))
		for _, name := range children {
			data, _, err := r.conn.Get(r.servicePath(service) + "/" + name)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("zookeeper: list %q: %w", service, r.classify(err))
			}
			nodes[name] = &instNode{data: data}
		}
		return cloneEndpoints(r.decodeApp(service, children, nodes, pzxid(stat, err))), nil
	}
	return cloneEndpoints(r.decode(service, children, pzxid(stat, err), nil)), nil
}

// Watch starts a watcher of service's providers. It waits for the first
// listing (up to cfg.RequestTimeout without a session), so the first Next
// returns at once: with the set, or with the ErrUnavailable error that
// kept it from being read.
func (r *Registry) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, fmt.Errorf("zookeeper: watch: %w", err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("zookeeper: watch %q: %w", service, registry.ErrClosed)
	}
	w := newWatcher(r, service)
	r.watchers[w] = struct{}{}
	r.mu.Unlock()
	if w.app != nil {
		go w.runApp()
	} else {
		go w.run()
	}
	select {
	case <-w.ready:
		return w, nil
	case <-w.stopped: // the Registry was closed meanwhile
		return nil, fmt.Errorf("zookeeper: watch %q: %w", service, registry.ErrClosed)
	case <-ctx.Done():
		w.Close()
		return nil, fmt.Errorf("zookeeper: watch %q: %w", service, ctx.Err())
	}
}

// Close stops the watchers and ends the session, which makes the server
// delete every node this client registered at once (if the server cannot
// be reached, when the session times out), and empties the SessionStore.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ws := make([]*watcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	close(r.done)
	for _, w := range ws {
		w.Close()
	}
	r.watch.close()
	r.conn.Close()
	r.clearSession()
	r.wg.Wait()
	// Nothing of this client outlives Close.
	drainEvents(r.events, r.log)
	return nil
}

func (r *Registry) providersPath(service string) string {
	return r.cfg.Root + "/" + service + "/providers"
}

// servicePath is the folder of service's nodes: its providers, or, for
// an application-level service APP:PROTOCOL, its app's instances.
func (r *Registry) servicePath(service string) string {
	if app, _, ok := dubboapp.ParseServiceName(service); ok {
		return dubboapp.Dir(app)
	}
	return r.providersPath(service)
}

// decode turns the children of service's providers node into endpoints
// and reports the malformed ones, each once.
func (r *Registry) decode(service string, children []string, pzxid int64, cache map[string]decoded) []registry.Endpoint {
	eps, bad := decodeChildren(service, children, cache)
	for _, name := range r.malformed.fresh(service, bad, pzxid) {
		r.log.Warn("zookeeper: skipping malformed provider node",
			zap.String("service", service), zap.String("node", name), zap.Error(bad[name]))
		r.onMalformed(service, name, bad[name])
	}
	return eps
}

// awaitSession waits until the client has a session, up to
// cfg.RequestTimeout or the end of ctx.
func (r *Registry) awaitSession(ctx context.Context) error {
	var timeout <-chan time.Time
	for {
		st, _, changed := r.sess.get()
		if st == zk.StateHasSession {
			return nil
		}
		if timeout == nil {
			t := time.NewTimer(r.cfg.RequestTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return fmt.Errorf("no ZooKeeper session within %s (state %s): %w", r.cfg.RequestTimeout, st, registry.ErrUnavailable)
		case <-ctx.Done():
			return fmt.Errorf("no ZooKeeper session (state %s): %w: %w", st, registry.ErrUnavailable, ctx.Err())
		case <-r.done:
			return registry.ErrClosed
		}
	}
}

// lockWrites takes the write lock; ctx may be nil (the keeper).
func (r *Registry) lockWrites(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case r.writes <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return registry.ErrClosed
	}
}

func (r *Registry) unlockWrites() { <-r.writes }

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Registry) registrationCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.regs)
}

func (r *Registry) addOrphan(path string) {
	r.mu.Lock()
	r.orphans[path] = struct{}{}
	r.mu.Unlock()
}

func (r *Registry) removeWatcher(w *watcher) {
	r.mu.Lock()
	delete(r.watchers, w)
	r.mu.Unlock()
}

// classify wraps the library's connection errors with ErrUnavailable (or
// ErrClosed once the Registry is closed); other errors (no auth, bad
// version, ...) are returned as they are.
func (r *Registry) classify(err error) error {
	switch {
	case r.isClosed():
		return fmt.Errorf("%w: %w", registry.ErrClosed, err)
	case connectionError(err):
		return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
	}
	return err
}

func connectionError(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved) ||
		errors.Is(err, zk.ErrClosing)
}

// uncertain reports whether a write failed in a way that hides whether the
// server applied it: the connection dropped after the request went out.
func uncertain(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrSessionMoved)
}

// pzxid is the Pzxid of a listing; 0 when the node was missing (err).
func pzxid(stat *zk.Stat, err error) int64 {
	if err != nil || stat == nil {
		return 0
	}
	return stat.Pzxid
}

func cloneEndpoints(eps []registry.Endpoint) []registry.Endpoint {
	out := make([]registry.Endpoint, len(eps))
	for i, ep := range eps {
		ep.Metadata = maps.Clone(ep.Metadata)
		out[i] = ep
	}
	return out
}

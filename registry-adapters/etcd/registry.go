package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

var _ registry.Registry = (*Registry)(nil)

// Registry is a registry.Registry on an etcd cluster. Create it with New.
type Registry struct {
	cfg        Config
	log        *zap.Logger
	client     *clientv3.Client
	ownsClient bool
	bad        *reporter
	conn       *connState
	store      registry.SessionStore // nil: none
	adopted    []registry.Endpoint   // taken back at New; never changes

	// ctx lives until Close; every request and goroutine ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// writes serializes every write of registrations (Register,
	// Deregister, lease renewal), so what etcd holds always matches regs
	// under the current lease. A channel rather than a mutex, so a caller
	// waiting for it can give up with its context.
	writes chan struct{}
	// leaseChanged wakes the keeper after r.lease changed.
	leaseChanged chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	closed   bool
	lease    clientv3.LeaseID  // 0: none yet, or lost
	regs     map[string]string // key -> value of every registration
	watchers map[*watcher]struct{}
}

// New returns a Registry on the etcd cluster of cfg.Endpoints (or on the
// client of WithClient). It does not wait for etcd to answer: with etcd
// down, Register and List fail with registry.ErrUnavailable and watchers
// retry until it is back.
func New(cfg Config, opts ...Option) (*Registry, error) {
	o := options{logger: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(o.client == nil); err != nil {
		return nil, err
	}
	log := o.logger.Named("registry.etcd")
	r := &Registry{
		cfg:          cfg,
		log:          log,
		client:       o.client,
		store:        o.store,
		bad:          newReporter(log, o.onMalformed),
		writes:       make(chan struct{}, 1),
		leaseChanged: make(chan struct{}, 1),
		regs:         map[string]string{},
		watchers:     map[*watcher]struct{}{},
	}
	if r.client == nil {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cfg.DialTimeout,
			Username:    cfg.Username,
			Password:    cfg.Password,
			TLS:         cfg.TLS,
			// Notice a silently dead connection (a partition) within
			// about 15s. The server refuses pings more often than every
			// 5s (its grpc-keepalive-min-time).
			DialKeepAliveTime:    10 * time.Second,
			DialKeepAliveTimeout: 5 * time.Second,
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				// Reconnect within a few seconds of etcd coming back,
				// not after gRPC's default of up to two minutes.
				Backoff: grpcbackoff.Config{
					BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second,
				},
				MinConnectTimeout: cfg.DialTimeout,
			})},
			// The adapter logs what matters itself; the client's
			// warnings repeat on every retry during an outage.
			Logger: log.Named("client").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: new client for %v: %w", cfg.Endpoints, err)
		}
		r.client, r.ownsClient = c, true
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.conn = newConnState(r.client.ActiveConnection())
	if r.store != nil {
		r.resume()
	}
	r.wg.Add(2)
	go r.keep()
	go func() {
		defer r.wg.Done()
		r.conn.monitor(r.ctx, r.log)
	}()
	return r, nil
}

// Client returns the etcd client the Registry uses.
func (r *Registry) Client() *clientv3.Client { return r.client }

// Register publishes ep under the Registry's lease; see registry.Registry.
// Registering again what it holds already, unchanged, writes nothing.
func (r *Registry) Register(ctx context.Context, ep registry.Endpoint) error {
	ep, err := ep.Normalized()
	if err != nil {
		return fmt.Errorf("etcd: register: %w", err)
	}
	key, value := encodeEntry(r.cfg.Prefix, ep)
	release, err := r.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("etcd: register %s: %w", ep, err)
	}
	defer release()
	r.mu.Lock()
	cur, ok := r.regs[key]
	unchanged := ok && cur == value && r.lease != 0
	r.mu.Unlock()
	if unchanged {
		return nil // etcd has it: a put would only wake every watcher
	}
	octx, cancel := r.opContext(ctx)
	defer cancel()
	if err := r.putLocked(octx, key, value); err != nil {
		return fmt.Errorf("etcd: register %s: %w", ep, r.failure(ctx, err))
	}
	r.mu.Lock()
	r.regs[key] = value
	r.mu.Unlock()
	return nil
}

// Deregister removes a registration of this Registry; see
// registry.Registry. When the request fails the registration is kept, and
// the caller may retry. It also removes an entry that a failed Register
// may have written under this Registry's lease before the error (a
// timeout can hide a write that took effect), as best it can, while still
// returning ErrNotFound for it.
func (r *Registry) Deregister(ctx context.Context, service, addr string) error {
	if err := registry.ValidateService(service); err != nil {
		return fmt.Errorf("etcd: deregister: %w", err)
	}
	if err := registry.ValidateAddr(addr); err != nil {
		return fmt.Errorf("etcd: deregister: %w", err)
	}
	key := serviceKey(r.cfg.Prefix, service) + addr
	release, err := r.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("etcd: deregister %s@%s: %w", service, addr, err)
	}
	defer release()
	r.mu.Lock()
	_, recorded := r.regs[key]
	lease := r.lease
	r.mu.Unlock()
	if lease != 0 {
		octx, cancel := r.opContext(ctx)
		defer cancel()
		// Delete the key only while it is ours: another client may have
		// registered the same address since.
		_, err := r.client.Txn(octx).
			If(clientv3.Compare(clientv3.LeaseValue(key), "=", lease)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil && recorded {
			return fmt.Errorf("etcd: deregister %s@%s: %w", service, addr, r.failure(ctx, err))
		}
	} // else the lease is gone, and the key with it.
	if !recorded {
		return fmt.Errorf("etcd: deregister %s@%s: %w", service, addr, registry.ErrNotFound)
	}
	r.mu.Lock()
	delete(r.regs, key)
	r.mu.Unlock()
	return nil
}

// List returns the endpoints of service, read from etcd now
// (linearizable); see registry.Registry.
func (r *Registry) List(ctx context.Context, service string) ([]registry.Endpoint, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, fmt.Errorf("etcd: list: %w", err)
	}
	if r.isClosed() {
		return nil, fmt.Errorf("etcd: list %q: %w", service, registry.ErrClosed)
	}
	octx, cancel := r.opContext(ctx)
	defer cancel()
	eps, _, err := r.fetch(octx, service)
	if err != nil {
		return nil, fmt.Errorf("etcd: list %q: %w", service, r.failure(ctx, err))
	}
	return sortedSet(eps), nil
}

// Close deregisters everything (it revokes the lease), empties the
// SessionStore, stops the watchers and closes the client if New made it.
// It returns an error only if the lease could not be revoked; etcd then
// drops the registrations when the lease expires. Close is idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		ws := make([]*watcher, 0, len(r.watchers))
		for w := range r.watchers {
			ws = append(ws, w)
		}
		r.mu.Unlock()
		for _, w := range ws {
			_ = w.Close()
		}
		// Abort requests in flight and stop the keeper, then take the
		// write lock so no write races the revoke.
		r.cancel()
		r.writes <- struct{}{}
		r.wg.Wait()
		r.mu.Lock()
		lease := r.lease
		r.lease = 0
		r.mu.Unlock()
		// The registrations end here, whether or not the revoke gets
		// through: a restart must not take them back.
		r.saveSession(0, 0)
		if lease != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
			if err := r.revoke(ctx, lease); err != nil {
				r.closeErr = fmt.Errorf("etcd: close: revoke lease %x: %w: %w", lease, registry.ErrUnavailable, err)
			}
			cancel()
		}
		if r.ownsClient {
			if err := r.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
				r.closeErr = errors.Join(r.closeErr, fmt.Errorf("etcd: close client: %w", err))
			}
		}
	})
	return r.closeErr
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// lockWrites takes the write lock, giving up when ctx ends or the Registry
// is closed.
func (r *Registry) lockWrites(ctx context.Context) (release func(), err error) {
	if r.isClosed() {
		return nil, registry.ErrClosed
	}
	select {
	case r.writes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.ctx.Done():
		return nil, registry.ErrClosed
	}
	if r.isClosed() {
		<-r.writes
		return nil, registry.ErrClosed
	}
	return func() { <-r.writes }, nil
}

// opContext bounds one request: the caller's ctx, RequestTimeout, and the
// Registry's lifetime.
func (r *Registry) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	stop := context.AfterFunc(r.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// failure turns the error of a request made under opContext(ctx) into the
// contract's terms: ErrClosed if the Registry was closed meanwhile, the
// caller's own context error if ctx ended, ErrUnavailable otherwise (a
// RequestTimeout included).
func (r *Registry) failure(ctx context.Context, err error) error {
	switch {
	case r.ctx.Err() != nil:
		return registry.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
}

// fetch reads the entries of service, reporting the malformed ones, and
// returns the good ones by key with the revision they were read at.
func (r *Registry) fetch(ctx context.Context, service string) (map[string]registry.Endpoint, int64, error) {
	resp, err := r.client.Get(ctx, serviceKey(r.cfg.Prefix, service), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	eps := make(map[string]registry.Endpoint, len(resp.Kvs))
	var bad []badEntry
	for _, kv := range resp.Kvs {
		ep, err := decodeEntry(r.cfg.Prefix, service, kv.Key, kv.Value)
		if err != nil {
			bad = append(bad, badEntry{key: string(kv.Key), value: kv.Value, create: kv.CreateRevision, mod: kv.ModRevision, err: err})
			continue
		}
		eps[string(kv.Key)] = ep
	}
	r.bad.listed(service, resp.Header.Revision, bad)
	return eps, resp.Header.Revision, nil
}

// sortedSet returns the endpoints of m sorted by Addr.
func sortedSet(m map[string]registry.Endpoint) []registry.Endpoint {
	eps := make([]registry.Endpoint, 0, len(m))
	for _, ep := range m {
		eps = append(eps, ep)
	}
	registry.Sort(eps)
	return eps
}

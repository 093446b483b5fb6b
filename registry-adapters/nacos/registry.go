package nacos

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/nacos_server"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

var _ registry.Registry = (*Registry)(nil)

// Registry is a registry.Registry on a Nacos namespace and group. Create
// it with New.
type Registry struct {
	cfg    Config
	log    *zap.Logger
	id     string // client ID, the connection label ConnLabel
	bad    *reporter
	sdkLog *sdkLogger
	server *nacos_server.NacosServer
	rpc    *rpc.RpcClient

	// ctx lives until Close; the SDK's goroutines end with it.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed by Close: the reconciler stops and lock waits end.
	done chan struct{}
	// kick wakes the reconciler.
	kick chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	epoch    uint64 // connections (re)made so far
	services map[string]*svcState
	// downSince is when the reconciler first saw the client out of
	// RUNNING; zero while it is connected.
	downSince time.Time
	// redoAt are the times to write everything again after a
	// ConnectResetRequest.
	redoAt []time.Time
}

// svcState is what the Registry holds for one service: its registrations
// and the subscription its watchers share.
type svcState struct {
	name string
	// lock is held while a publication or (un)subscription of the service
	// is on its way to Nacos. A channel, so waiting can end with a context.
	lock chan struct{}

	// Guarded by Registry.mu.

	// regs are this client's registrations, by Addr: what Nacos holds for
	// this client unless dirty.
	regs map[string]registry.Endpoint
	// dirty: Nacos may hold something else (a request failed or was
	// abandoned, or the connection was made anew), so the reconciler
	// publishes regs again.
	dirty bool
	// lastSent is an instance last sent for the service, the one to name
	// in a deregistration once regs is empty.
	lastSent *model.Instance
	sub      *subscription
}

// New returns a Registry on the Nacos servers of cfg. It connects before
// returning when a server answers within a few tries; otherwise it goes on
// trying in the background, and until it is connected Register and List
// fail with registry.ErrUnavailable and watchers report it.
func New(cfg Config, opts ...Option) (*Registry, error) {
	o := options{logger: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level, _ := sdkLevel(cfg.SDKLogLevel)
	var b [8]byte
	_, _ = rand.Read(b[:])
	log := o.logger.Named("registry.nacos")
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cfg:      cfg,
		id:       hex.EncodeToString(b[:]),
		bad:      newReporter(log, o.onMalformed),
		sdkLog:   newSDKLogger(log.Named("sdk"), level),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		services: map[string]*svcState{},
	}
	r.log = log.With(zap.String("client_id", r.id))
	r.sdkLog.install()
	if err := r.connect(o.grpcAddr); err != nil {
		cancel()
		r.sdkLog.detach()
		return nil, err
	}
	if !r.rpc.IsRunning() {
		r.downSince = time.Now()
	}
	r.wg.Add(1)
	go r.reconcileLoop()
	r.log.Debug("started", zap.Strings("servers", cfg.Servers), zap.String("namespace", cfg.Namespace), zap.String("group", cfg.Group))
	return r, nil
}

// service returns the state of name, creating it.
func (r *Registry) service(name string) (*svcState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, registry.ErrClosed
	}
	st := r.services[name]
	if st == nil {
		st = &svcState{name: name, lock: make(chan struct{}, 1), regs: map[string]registry.Endpoint{}}
		r.services[name] = st
	}
	return st, nil
}

// sortedServices returns the service states sorted by name. r.mu is held.
func (r *Registry) sortedServicesLocked() []*svcState {
	return slices.SortedFunc(maps.Values(r.services), func(a, b *svcState) int { return cmp.Compare(a.name, b.name) })
}

// List implements registry.Registry. It asks Nacos, not a cache.
func (r *Registry) List(ctx context.Context, service string) ([]registry.Endpoint, error) {
	if err := registry.ValidateService(service); err != nil {
		return nil, fmt.Errorf("nacos: list: %w", err)
	}
	req := rpc_request.NewServiceQueryRequest(r.cfg.Namespace, service, r.cfg.Group, "", false, 0)
	resp, err := r.call(ctx, req, func(rpc_response.IResponse, error, bool) {})
	if err != nil {
		return nil, fmt.Errorf("nacos: list %q: %w", service, err)
	}
	q, ok := resp.(*rpc_response.QueryServiceResponse)
	if !ok {
		return nil, fmt.Errorf("nacos: list %q: answer of type %T: %w", service, resp, registry.ErrUnavailable)
	}
	return r.bad.endpoints(r.cfg.Group, service, q.ServiceInfo.Hosts), nil
}

// Close implements registry.Registry: watchers end, every registration is
// deregistered (Nacos would drop them with the connection anyway) and the
// connection is closed.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	for _, st := range r.services {
		if s := st.sub; s != nil {
			for w := range s.watchers {
				w.closeLocked()
			}
			st.sub = nil
		}
	}
	r.mu.Unlock()
	// Requests on their way finish (within RequestTimeout), the
	// reconciler stops; nothing else starts.
	r.wg.Wait()
	r.deregisterAll()
	// Shutdown reads the client's current connection, which a reconnect
	// on its way would write unsynchronised: let it finish first.
	r.waitRunning(min(r.cfg.RequestTimeout, 500*time.Millisecond), nil)
	r.rpc.Shutdown()
	r.cancel()
	r.sdkLog.detach()
	r.log.Debug("closed")
	return nil
}

// deregisterAll removes what this client published, service by service,
// while the connection is up; it stops at the first failure, since Nacos
// drops the instances when the connection closes in any case.
func (r *Registry) deregisterAll() {
	if !r.rpc.IsRunning() {
		return
	}
	type pub struct {
		service string
		in      model.Instance
	}
	var pubs []pub
	r.mu.Lock()
	for _, st := range r.sortedServicesLocked() {
		if st.lastSent != nil && (len(st.regs) > 0 || st.dirty) {
			pubs = append(pubs, pub{st.name, *st.lastSent})
		}
	}
	r.mu.Unlock()
	for _, p := range pubs {
		req := rpc_request.NewInstanceRequest(r.cfg.Namespace, p.service, r.cfg.Group, "deregisterInstance", p.in)
		if _, err := r.do(req, nil); err != nil {
			r.log.Warn("deregistering at close failed; nacos drops the instances with the connection",
				zap.String("service", p.service), zap.Error(err))
			return
		}
	}
}

package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// Scheme is the scheme of gRPC targets the resolver serves:
// "detour:///SERVICE".
const Scheme = "detour"

// ResolverOption configures the gRPC resolver.
type ResolverOption func(*resolverOptions)

type resolverOptions struct {
	serviceConfig string
}

// WithServiceConfig gives the resolver the app's own default service
// config (JSON, as for grpc.WithDefaultServiceConfig; DialOptions passes
// it there too). While the mesh carries the service the resolver pushes
// it without its retry and hedging policies (the sidecar retries, once);
// otherwise it pushes it as it is. Without it the resolver pushes an
// empty service config, which has no retry policy either.
func WithServiceConfig(json string) ResolverOption {
	return func(o *resolverOptions) { o.serviceConfig = json }
}

// ResolverBuilder returns the resolver of "detour:///SERVICE" targets, to
// hand to grpc.WithResolvers. It pushes the agent's endpoints as
// addresses and the governance as service config (see
// WithServiceConfig), and reports the agent's errors with ReportError.
// Use it with GRPCDialer (DialOptions has both) for instant fallback.
func (c *Client) ResolverBuilder(opts ...ResolverOption) resolver.Builder {
	var o resolverOptions
	for _, opt := range opts {
		opt(&o)
	}
	b := &builder{c: c, app: o.serviceConfig}
	if b.app == "" {
		b.app = "{}"
	}
	b.mesh, b.err = meshServiceConfig(b.app)
	return b
}

// DialOptions returns what grpc.NewClient needs for "detour:///SERVICE"
// targets: the resolver, the dialer that falls back at once, the
// interceptor that applies the app's retry policy to unary calls the
// sidecar's death caught (UnaryInterceptor), and the app's default
// service config if given. Add transport credentials.
func (c *Client) DialOptions(opts ...ResolverOption) []grpc.DialOption {
	var o resolverOptions
	for _, opt := range opts {
		opt(&o)
	}
	out := []grpc.DialOption{
		grpc.WithResolvers(c.ResolverBuilder(opts...)),
		grpc.WithContextDialer(c.GRPCDialer()),
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor(opts...)),
	}
	if o.serviceConfig != "" {
		out = append(out, grpc.WithDefaultServiceConfig(o.serviceConfig))
	}
	return out
}

// Register registers the resolver in grpc's global registry, for those
// who want "detour:///SERVICE" to work without grpc.WithResolvers. It is
// global: call it once, from main. Targets built after the Client closed
// fail.
func (c *Client) Register(opts ...ResolverOption) {
	resolver.Register(c.ResolverBuilder(opts...))
}

// meshServiceConfig is app without retry and hedging policies.
func meshServiceConfig(app string) (string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(app), &m); err != nil {
		return "", fmt.Errorf("shim: service config: %w", err)
	}
	if mcs, ok := m["methodConfig"].([]any); ok {
		for _, mc := range mcs {
			if o, ok := mc.(map[string]any); ok {
				delete(o, "retryPolicy")
				delete(o, "hedgingPolicy")
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("shim: service config: %w", err)
	}
	return string(b), nil
}

type builder struct {
	c         *Client
	app, mesh string
	err       error
}

func (b *builder) Scheme() string { return Scheme }

func (b *builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if b.err != nil {
		return nil, b.err
	}
	if target.URL.Host != "" {
		return nil, fmt.Errorf("shim: target %q: no authority expected (detour:///SERVICE)", target.URL.String())
	}
	service := target.Endpoint()
	if service == "" {
		return nil, fmt.Errorf("shim: target %q: no service (detour:///SERVICE)", target.URL.String())
	}
	app, mesh := cc.ParseServiceConfig(b.app), cc.ParseServiceConfig(b.mesh)
	if err := errors.Join(app.Err, mesh.Err); err != nil {
		return nil, fmt.Errorf("shim: service config: %w", err)
	}
	w, err := b.c.acquire(service)
	if err != nil {
		return nil, err
	}
	r := &grpcResolver{w: w, cc: cc, app: app, mesh: mesh, sig: w.listen(), done: make(chan struct{})}
	b.c.goLoop(r.run)
	return r, nil
}

// grpcResolver pushes its watch's view to one gRPC ClientConn, from its
// own goroutine, newest state first.
type grpcResolver struct {
	w         *watch
	cc        resolver.ClientConn
	app, mesh *serviceconfig.ParseResult
	sig       chan struct{}
	done      chan struct{}
	once      sync.Once

	// owned by run
	pushed   bool
	lastMesh bool
	lastEps  []string
	lastErr  error
}

func (r *grpcResolver) run() {
	defer r.w.c.release(r.w)
	defer r.w.unlisten(r.sig)
	for {
		select {
		case <-r.sig:
		case <-r.done:
			return
		case <-r.w.c.ctx.Done():
			return
		}
		r.push()
	}
}

func (r *grpcResolver) push() {
	a, have, err := r.w.view()
	if err == nil && have && len(a.Endpoints) == 0 {
		err = fmt.Errorf("shim: service %q has no endpoints", r.w.service)
	}
	if err != nil {
		if r.lastErr == nil || r.lastErr.Error() != err.Error() {
			r.cc.ReportError(err)
		}
		r.lastErr, r.pushed = err, false
		return
	}
	if !have || (r.pushed && a.Mesh == r.lastMesh && slices.Equal(a.Endpoints, r.lastEps)) {
		return
	}
	st := resolver.State{ServiceConfig: r.app}
	if a.Mesh {
		st.ServiceConfig = r.mesh
	}
	for _, e := range a.Endpoints {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: e})
	}
	if uerr := r.cc.UpdateState(st); uerr != nil {
		r.w.c.log.Warn("grpc rejected the resolver state", zap.String("service", r.w.service), zap.Error(uerr))
	}
	r.pushed, r.lastMesh, r.lastEps, r.lastErr = true, a.Mesh, a.Endpoints, nil
}

// ResolveNow cuts short the backoff of a failed watch.
func (r *grpcResolver) ResolveNow(resolver.ResolveNowOptions) { r.w.retryNow() }

// Close stops the resolver; it does not wait for its goroutine.
func (r *grpcResolver) Close() { r.once.Do(func() { close(r.done) }) }

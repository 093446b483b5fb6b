package nacos

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/http_agent"
	"github.com/nacos-group/nacos-sdk-go/v2/common/nacos_server"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"github.com/nacos-group/nacos-sdk-go/v2/common/security"
	"github.com/nacos-group/nacos-sdk-go/v2/util"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// ConnLabel is the label of the adapter's Nacos connection that carries
// its client ID (Nacos shows connection labels in its console), so a
// connection can be told apart from other clients of the same host.
const ConnLabel = "detour_client_id"

// localIPOnce makes the first call of the SDK's util.LocalIP, which fills
// a package variable without synchronisation: called by every SDK request
// first, it would race when two Registries start at once.
var localIPOnce sync.Once

// connect starts the SDK's gRPC client: the server check, the bi-stream
// and its connection setup, then health checks and reconnects by itself.
// It tries the servers a few times before returning and goes on trying in
// the background if none answered, so New works with Nacos down.
func (r *Registry) connect(grpcAddr string) error {
	localIPOnce.Do(func() { util.LocalIP() })
	servers := make([]constant.ServerConfig, 0, len(r.cfg.Servers))
	for _, s := range r.cfg.Servers {
		host, port, err := splitServer(s)
		if err != nil {
			return err // Validate checked it
		}
		sc := constant.ServerConfig{
			Scheme: "http", ContextPath: "/nacos",
			IpAddr: host, Port: port, GrpcPort: port + GRPCPortOffset,
		}
		if grpcAddr != "" {
			h, p, err := net.SplitHostPort(grpcAddr)
			if err != nil {
				return fmt.Errorf("nacos: grpc address %q: %w", grpcAddr, err)
			}
			sc.IpAddr = h
			sc.GrpcPort, _ = strconv.ParseUint(p, 10, 16)
		}
		servers = append(servers, sc)
	}
	timeoutMs := uint64(r.cfg.RequestTimeout.Milliseconds())
	ccfg := constant.ClientConfig{
		NamespaceId:         r.cfg.Namespace,
		TimeoutMs:           timeoutMs,
		Username:            r.cfg.Username,
		Password:            r.cfg.Password,
		NotLoadCacheAtStart: true,
	}
	// The NacosServer holds the server list and, with a username, logs in
	// over HTTP and refreshes the token until r.ctx ends.
	ns, err := nacos_server.NewNacosServer(r.ctx, servers, ccfg, &http_agent.HttpAgent{}, timeoutMs, "", nil)
	if err != nil {
		return fmt.Errorf("nacos: %w", err)
	}
	labels := map[string]string{
		constant.LABEL_SOURCE: constant.LABEL_SOURCE_SDK,
		constant.LABEL_MODULE: constant.LABEL_MODULE_NAMING,
		ConnLabel:             r.id,
	}
	// TLS is off and, Appointed, not read from the environment.
	ic, err := rpc.CreateClient(r.ctx, "detour-naming-"+r.id, rpc.GRPC, labels, ns, &constant.TLSConfig{Appointed: true}, nil)
	if err != nil {
		return fmt.Errorf("nacos: %w", err)
	}
	c := ic.GetRpcClient()
	c.RegisterServerRequestHandler(func() rpc_request.IRequest {
		return &rpc_request.NotifySubscriberRequest{NamingRequest: &rpc_request.NamingRequest{Request: &rpc_request.Request{}}}
	}, pushHandler{r})
	r.server, r.rpc = ns, c
	c.Start()
	// After Start, which registers the SDK's own handler for it.
	c.RegisterServerRequestHandler(func() rpc_request.IRequest {
		return &rpc_request.ConnectResetRequest{InternalRequest: rpc_request.NewInternalRequest()}
	}, resetHandler{r: r})
	return nil
}

// do sends req on the current connection, with the SDK's retries, within
// Config.RequestTimeout; while the client is reconnecting it waits for it
// that long, or until stop is closed. Every failure, a refusal by Nacos
// included, wraps registry.ErrUnavailable.
//
// The SDK's Request must not be called while the client is not RUNNING:
// it then reads the current connection and the status unsynchronised with
// the reconnect writing them. Seeing RUNNING first (an atomic load after
// the reconnect's store) orders the reconnect's writes before the call.
func (r *Registry) do(req rpc_request.IRequest, stop <-chan struct{}) (rpc_response.IResponse, error) {
	if !r.waitRunning(r.cfg.RequestTimeout, stop) {
		return nil, fmt.Errorf("not connected to nacos: %w", registry.ErrUnavailable)
	}
	r.server.InjectSecurityInfo(req.GetHeaders(), security.BuildNamingResourceByRequest(req))
	resp, err := r.rpc.Request(req, r.cfg.RequestTimeout.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, registry.ErrUnavailable)
	}
	if !resp.IsSuccess() {
		return nil, fmt.Errorf("nacos refused %s (code %d): %s: %w",
			req.GetRequestType(), resp.GetErrorCode(), resp.GetMessage(), registry.ErrUnavailable)
	}
	return resp, nil
}

// waitRunning waits up to d for the client to be RUNNING, polling its
// status, and reports whether it is.
func (r *Registry) waitRunning(d time.Duration, stop <-chan struct{}) bool {
	if r.rpc.IsRunning() {
		return true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-poll.C:
			if r.rpc.IsRunning() {
				return true
			}
		case <-deadline.C:
			return r.rpc.IsRunning()
		case <-stop:
			return false
		}
	}
}

// call sends req from a goroutine of its own and waits for the answer or
// for ctx, whichever comes first: the SDK's requests know no context.
// after runs exactly once with the outcome, in that goroutine, before
// call returns the answer; abandoned tells it that call returned ctx's
// error first. after must not block. When ctx has ended or r is closed
// nothing is sent and after runs at once with that error.
func (r *Registry) call(ctx context.Context, req rpc_request.IRequest,
	after func(resp rpc_response.IResponse, err error, abandoned bool),
) (rpc_response.IResponse, error) {
	if err := ctx.Err(); err != nil {
		after(nil, err, false)
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		after(nil, registry.ErrClosed, false)
		return nil, registry.ErrClosed
	}
	r.wg.Add(1)
	r.mu.Unlock()

	type result struct {
		resp rpc_response.IResponse
		err  error
	}
	var (
		mu        sync.Mutex
		finished  bool
		abandoned bool
	)
	res := make(chan result, 1)
	go func() {
		defer r.wg.Done()
		resp, err := r.do(req, r.done)
		mu.Lock()
		finished = true
		after(resp, err, abandoned)
		mu.Unlock()
		res <- result{resp, err}
	}()
	select {
	case x := <-res:
		return x.resp, x.err
	case <-ctx.Done():
		mu.Lock()
		if finished {
			mu.Unlock()
			x := <-res
			return x.resp, x.err
		}
		abandoned = true
		mu.Unlock()
		return nil, ctx.Err()
	}
}

// lock takes st's write lock: publications and subscriptions of one
// service reach Nacos one at a time, in order.
func (r *Registry) lock(ctx context.Context, st *svcState) error {
	select {
	case st.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return registry.ErrClosed
	}
}

func (r *Registry) unlock(st *svcState) { <-st.lock }

// kickLocked wakes the reconciler. r.mu is held.
func (r *Registry) kickLocked() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

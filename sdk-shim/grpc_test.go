package shim_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	shim "github.com/detourmesh/detour/sdk-shim"
)

// appServiceConfig is the app's own policy: 3 attempts on UNAVAILABLE.
const appServiceConfig = `{"methodConfig":[{"name":[{"service":"grpc.health.v1.Health"}],
 "retryPolicy":{"maxAttempts":3,"initialBackoff":"0.01s","maxBackoff":"0.05s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}`

// greeter is a gRPC server (the health service) that counts calls and
// fails them with UNAVAILABLE when told to.
type greeter struct {
	grpc_health_v1.UnimplementedHealthServer
	addr    string
	calls   atomic.Int64
	fail    atomic.Bool
	hold    atomic.Bool // calls wait for release (or their end)
	release chan struct{}
	once    sync.Once
	srv     *grpc.Server
	done    chan struct{}
}

func (g *greeter) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	g.calls.Add(1)
	if g.hold.Load() {
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if g.fail.Load() {
		return nil, status.Error(codes.Unavailable, "told to fail")
	}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

func startGreeter(t *testing.T, ip string) *greeter {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	g := &greeter{addr: l.Addr().String(), srv: grpc.NewServer(), release: make(chan struct{}), done: make(chan struct{})}
	grpc_health_v1.RegisterHealthServer(g.srv, g)
	go func() { defer close(g.done); g.srv.Serve(l) }()
	t.Cleanup(g.stop)
	return g
}

func (g *greeter) releaseAll() { g.once.Do(func() { close(g.release) }) }

func (g *greeter) stop() {
	g.releaseAll()
	g.srv.Stop()
	<-g.done
}

func dialGreeter(t *testing.T, c *shim.Client, svc string) grpc_health_v1.HealthClient {
	t.Helper()
	return dialGreeterSC(t, c, svc, appServiceConfig)
}

func dialGreeterSC(t *testing.T, c *shim.Client, svc, sc string) grpc_health_v1.HealthClient {
	t.Helper()
	var ropts []shim.ResolverOption
	if sc != "" {
		ropts = append(ropts, shim.WithServiceConfig(sc))
	}
	opts := append(c.DialOptions(ropts...), grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient("detour:///"+svc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return grpc_health_v1.NewHealthClient(conn)
}

func check(ctx context.Context, h grpc_health_v1.HealthClient) error {
	_, err := h.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	return err
}

// attempts makes one call to a failing greeter and returns how many
// attempts reached it.
func attempts(t *testing.T, h grpc_health_v1.HealthClient, g *greeter) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	before := g.calls.Load()
	if err := check(ctx, h); status.Code(err) != codes.Unavailable {
		t.Fatalf("call to a failing greeter = %v, want UNAVAILABLE", err)
	}
	return g.calls.Load() - before
}

// TestGRPCResolverGovernance: the resolver follows the agent's answers,
// and the app's retry policy applies exactly when the mesh does not carry
// the service.
func TestGRPCResolverGovernance(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc := uniqueService(t)
	g1 := startGreeter(t, host(3))
	e.register(svc, g1.addr)
	h := dialGreeter(t, c, svc)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := check(ctx, h); err != nil {
		t.Fatalf("first call: %v", err)
	}

	t.Log("updates: the answer moves to another instance")
	g2 := startGreeter(t, host(4))
	e.register(svc, g2.addr)
	if err := e.other.Deregister(ctx, svc, g1.addr); err != nil {
		t.Fatal(err)
	}
	g1.stop()
	eventually(t, "calls reach the second instance", func() bool {
		before := g2.calls.Load()
		return check(ctx, h) == nil && g2.calls.Load() > before
	})

	t.Log("no mesh: the app's retry policy")
	g2.fail.Store(true)
	if n := attempts(t, h, g2); n != 3 {
		t.Errorf("attempts without the mesh = %d, want 3 (the app's policy)", n)
	}

	t.Log("mesh: no retry policy, through the sidecar")
	e.sidecarUp(svc)
	eventually(t, "one attempt through the sidecar", func() bool {
		through := e.sidecar.accepted.Load()
		return attempts(t, h, g2) == 1 && through > 0
	})

	t.Log("fallback: the app's policy again")
	e.sidecarDown(svc)
	e.sidecar.kill()
	eventually(t, "the app's policy again", func() bool { return attempts(t, h, g2) == 3 })
}

// TestGRPCErrors: what goes wrong reaches the app's calls.
func TestGRPCErrors(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	call := func(target string, opts []grpc.DialOption) error {
		conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			return err
		}
		defer conn.Close()
		return check(ctx, grpc_health_v1.NewHealthClient(conn))
	}
	for _, tc := range []struct {
		name, target string
		opts         []grpc.DialOption
		want         string
	}{
		{"no endpoints", "detour:///" + uniqueService(t), c.DialOptions(), "has no endpoints"},
		{"invalid service", "detour:///no_such!", c.DialOptions(), "InvalidArgument"},
		{"authority", "detour://agent/greeter", c.DialOptions(), "no authority expected"},
		{"bad service config", "detour:///greeter", []grpc.DialOption{grpc.WithResolvers(c.ResolverBuilder(shim.WithServiceConfig(`{`)))}, "service config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call(tc.target, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("call = %v, want an error with %q", err, tc.want)
			}
		})
	}

	t.Log("the agent goes away: the watch's error reaches a new channel")
	e.stopAgent()
	if err := call("detour:///greeter", c.DialOptions()); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shim: watch") {
		t.Errorf("call with the agent down = %v, want UNAVAILABLE from the watch", err)
	}
}

// TestGRPCAgentRestart: calls go on while the agent is away, and the
// resolver follows the new agent's answers once it is back.
func TestGRPCAgentRestart(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc := uniqueService(t)
	g1 := startGreeter(t, host(3))
	e.register(svc, g1.addr)
	h := dialGreeter(t, c, svc)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	updates, err := c.Watch(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(ctx, h); err != nil {
		t.Fatal(err)
	}

	e.stopAgent()
	next(t, updates, "the watch's failure", func(u shim.Update) bool { return u.Err != nil && u.Answer.Endpoints[0] == g1.addr })
	for range 10 {
		if err := check(ctx, h); err != nil {
			t.Fatalf("call with the agent away: %v", err)
		}
	}

	e.startAgent()
	g2 := startGreeter(t, host(4))
	e.register(svc, g2.addr)
	if err := e.other.Deregister(ctx, svc, g1.addr); err != nil {
		t.Fatal(err)
	}
	next(t, updates, "the new agent's answer", endpointsAre(g2.addr))
	g1.stop()
	eventually(t, "calls reach the second instance", func() bool {
		before := g2.calls.Load()
		return check(ctx, h) == nil && g2.calls.Load() > before
	})
}

// TestGRPCReplay: a unary call in flight when the sidecar dies is made
// again, to the fallback, when the app's own policy retries its method on
// UNAVAILABLE; without such a policy it fails.
func TestGRPCReplay(t *testing.T) {
	for _, tc := range []struct {
		name, sc string
		replay   bool
	}{
		{"app retries UNAVAILABLE", appServiceConfig, true},
		{"no retry policy", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.client()
			svc := uniqueService(t)
			g := startGreeter(t, host(3))
			e.register(svc, g.addr)
			e.sidecarUp(svc)
			h := dialGreeterSC(t, c, svc, tc.sc)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			eventually(t, "calls through the sidecar", func() bool { return check(ctx, h) == nil && e.sidecar.accepted.Load() > 0 })

			g.hold.Store(true)
			before := g.calls.Load()
			done := make(chan error, 1)
			go func() { done <- check(ctx, h) }()
			eventually(t, "the call at the app", func() bool { return g.calls.Load() == before+1 })
			e.sidecar.kill()
			if !tc.replay {
				if err := <-done; status.Code(err) != codes.Unavailable {
					t.Errorf("call in flight at the kill = %v, want UNAVAILABLE", err)
				}
				return
			}
			eventually(t, "the call made again", func() bool { return g.calls.Load() == before+2 })
			g.releaseAll()
			if err := <-done; err != nil {
				t.Errorf("call in flight at the kill = %v, want it made again", err)
			}
		})
	}
}

// TestRegister: the global registration, for apps that want it.
func TestRegister(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc := uniqueService(t)
	g := startGreeter(t, host(3))
	e.register(svc, g.addr)
	c.Register()
	conn, err := grpc.NewClient("detour:///"+svc, grpc.WithContextDialer(c.GRPCDialer()), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := check(ctx, grpc_health_v1.NewHealthClient(conn)); err != nil {
		t.Fatal(err)
	}
}

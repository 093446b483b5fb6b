package shim_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/api"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
	shim "github.com/detourmesh/detour/sdk-shim"
)

// hosts is the loopback block this test binary holds alone
// (testbed.ReserveNet): the agent is host(2), apps are host(3) and
// host(4). The stand-in sidecar binds egress ports the agent assigns from
// fixed ranges, so an address of the run's own keeps them apart from
// another run's and from the demo's.
var hosts *testbed.Net

func host(i int) string { return hosts.Host(i) }

func TestMain(m *testing.M) {
	var err error
	if hosts, err = testbed.ReserveNet(); err != nil {
		fmt.Fprintln(os.Stderr, "sdk-shim tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	hosts.Release()
	os.Exit(code)
}

const wait = 20 * time.Second

// env is one host with a real naming agent on embedded etcd, serving its
// gRPC API on a fixed address so that it can be restarted, and a stand-in
// sidecar the test starts and kills.
type env struct {
	t        *testing.T
	ip       string // the host
	etcd     *embedded.Server
	other    registry.Registry // another host's registry client: registers apps
	data     string
	grpcAddr string
	ready    atomic.Bool

	reg     registry.Registry
	a       *agent.Agent
	gs      *grpc.Server
	served  chan struct{}
	sidecar *standIn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ip: host(2), data: t.TempDir()}
	cfg := embedded.Default()
	cfg.DataDir = t.TempDir()
	cfg.ListenClient = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cfg.ListenPeer = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cfg.UnsafeNoFsync = true
	srv, err := embedded.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.etcd = srv
	t.Cleanup(func() { srv.Close() })
	e.other = e.etcdClient()
	t.Cleanup(func() { e.other.Close() })
	e.startAgent()
	t.Cleanup(e.stopAgent)
	return e
}

func (e *env) etcdClient() registry.Registry {
	e.t.Helper()
	c := etcd.Default()
	c.Endpoints = e.etcd.Endpoints()
	c.LeaseTTL = 2 * time.Second
	c.RequestTimeout = 2 * time.Second
	r, err := etcd.New(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// startAgent starts the agent (again: same data dir, same address).
func (e *env) startAgent() {
	t := e.t
	t.Helper()
	c := config.Default()
	c.HostIP = e.ip
	c.Ports.EgressIP = e.ip
	c.DataDir = e.data
	c.Sidecar.ProbeInterval = 20 * time.Millisecond
	c.Sidecar.ProbeTimeout = 100 * time.Millisecond
	c.HealthCheck.Interval = time.Hour // the agent's own app check stays out of the way
	c.API.InitialWait = 5 * time.Second
	c.Defaults.Timeout = 700 * time.Millisecond
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e.reg = e.etcdClient()
	a, err := agent.New(c, e.reg, agent.WithLogger(zaptest.NewLogger(t).Named("agent")),
		agent.WithReadyProbe(func(context.Context, string) error {
			if e.ready.Load() {
				return nil
			}
			return errors.New("connection refused")
		}))
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(e.ip, "0")
	if e.grpcAddr != "" {
		addr = e.grpcAddr
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	e.grpcAddr = l.Addr().String()
	e.a = a
	e.gs = grpc.NewServer()
	api.RegisterGRPC(e.gs, a)
	e.served = make(chan struct{})
	go func() { defer close(e.served); e.gs.Serve(l) }()
}

// stopAgent stops the agent as SIGTERM would (its registry client's
// close deregisters).
func (e *env) stopAgent() {
	if e.a == nil {
		return
	}
	if e.sidecar != nil {
		e.sidecar.kill()
		e.sidecar.stopSession()
		e.sidecar = nil
	}
	e.a.Close()
	e.gs.Stop()
	<-e.served
	e.reg.Close()
	e.a = nil
}

func (e *env) client(opts ...shim.Option) *shim.Client {
	e.t.Helper()
	cfg := shim.Default()
	cfg.Agent = e.grpcAddr
	c, err := shim.New(cfg, append([]shim.Option{shim.WithLogger(zaptest.NewLogger(e.t).Named("app"))}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// register registers an app of another host directly in the registry.
func (e *env) register(svc, addr string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.other.Register(ctx, registry.Endpoint{Service: svc, Addr: addr}); err != nil {
		e.t.Fatal(err)
	}
}

// sidecarUp starts (or restarts) the stand-in sidecar and waits until
// the agent answers svc through it.
func (e *env) sidecarUp(svc string) {
	e.t.Helper()
	if e.sidecar == nil {
		e.sidecar = newStandIn(e.t, e.a)
	} else {
		e.sidecar.reconnect(e.a)
	}
	e.ready.Store(true)
	e.agentSays(svc, "mesh answer", func(a agent.Answer) bool { return a.Mesh })
}

// sidecarDown tells the agent its sidecar is gone (stream broken, /ready
// refused); the data plane is killed separately (standIn.kill).
func (e *env) sidecarDown(svc string) {
	e.t.Helper()
	e.ready.Store(false)
	e.sidecar.stopSession()
	e.agentSays(svc, "fallback answer", func(a agent.Answer) bool { return !a.Mesh })
}

func (e *env) agentSays(svc, what string, cond func(agent.Answer) bool) agent.Answer {
	e.t.Helper()
	var ans agent.Answer
	registrytest.Eventually(e.t, wait, what, func() bool {
		var err error
		ans, err = e.a.Resolve(context.Background(), svc)
		return err == nil && cond(ans)
	})
	return ans
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func uniqueService(t *testing.T) string {
	return fmt.Sprintf("shim.test-%d", time.Now().UnixNano())
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	registrytest.Eventually(t, wait, what, cond)
}

package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// testConfig is a fast-paced config on 127.0.0.1 with its data in dir.
func testConfig(dir string) config.Config {
	c := config.Default()
	c.DataDir = dir
	c.Sidecar.ProbeInterval = 10 * time.Millisecond
	c.Sidecar.ProbeTimeout = 50 * time.Millisecond
	c.Sidecar.ReadyThreshold = 3
	c.Sidecar.StreamGrace = 500 * time.Millisecond
	c.HealthCheck.Interval = 20 * time.Millisecond
	c.HealthCheck.Timeout = 100 * time.Millisecond
	c.API.InitialWait = 2 * time.Second
	return c
}

// env is one agent on a fake registry server, with a switch for the
// sidecar's /ready.
type env struct {
	t      *testing.T
	srv    *registrytest.FakeServer
	cli    *registrytest.Fake // the agent's registry client
	other  *registrytest.Fake // another host's client
	a      *Agent
	cfg    config.Config
	ready  *atomic.Bool
	probes atomic.Int64 // /ready probes made
	// realDial makes the agent's own app check dial for real; by default
	// every app is taken as listening.
	realDial *atomic.Bool
}

func newEnv(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	e := &env{t: t, srv: registrytest.NewFakeServer(), ready: &atomic.Bool{}, realDial: &atomic.Bool{}}
	e.cfg = testConfig(t.TempDir())
	if mutate != nil {
		mutate(&e.cfg)
	}
	if err := e.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.other = e.srv.Client(nil)
	t.Cleanup(func() { e.other.Close() })
	e.start()
	return e
}

// start (re)starts the agent on a new client with the same data dir.
func (e *env) start() {
	e.t.Helper()
	e.cli = e.srv.Client(nil)
	e.startOn(e.cli)
}

// startOn starts the agent on reg with the same data dir; e.cli is
// closed with it.
func (e *env) startOn(reg registry.Registry) {
	e.t.Helper()
	a, err := New(e.cfg, reg,
		WithLogger(zaptest.NewLogger(e.t)),
		WithPortProbe(func(string, int) bool { return true }),
		WithDialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
			if e.realDial.Load() {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
			c1, c2 := net.Pipe()
			c2.Close()
			return c1, nil
		}),
		WithReadyProbe(func(ctx context.Context, addr string) error {
			e.probes.Add(1)
			if e.ready.Load() {
				return nil
			}
			return errors.New("connection refused")
		}))
	if err != nil {
		e.t.Fatal(err)
	}
	e.a = a
	cli := e.cli
	e.t.Cleanup(func() { a.Close(); cli.Close() })
}

// stop closes the agent and its registry client.
func (e *env) stop() {
	e.a.Close()
	e.cli.Close()
}

// standIn is a stand-in for the sidecar's control stream: it acknowledges
// every snapshot and can report status.
type standIn struct {
	sess   *SidecarSession
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	last   *sidecarpb.Snapshot
	nack   bool
}

func (e *env) startSidecar() *standIn {
	e.t.Helper()
	e.ready.Store(true)
	s, err := e.connectSidecar(&sidecarpb.Hello{AdminAddr: "127.0.0.1:7702"})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// connectSidecar opens a stand-in's stream with hello.
func (e *env) connectSidecar(hello *sidecarpb.Hello) (*standIn, error) {
	sess, err := e.a.SidecarConnect(hello)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &standIn{sess: sess, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			snap, err := sess.Next(ctx)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.last = snap
			nack := s.nack
			s.mu.Unlock()
			if nack {
				sess.Nack(snap.Version, "test says no")
			} else {
				sess.Ack(snap.Version)
			}
		}
	}()
	e.t.Cleanup(s.stop)
	return s, nil
}

func (s *standIn) stop() {
	s.cancel()
	<-s.done
	s.sess.Close()
}

func (s *standIn) snapshot() *sidecarpb.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// kill is a SIGKILL as the agent sees it: the stream breaks and /ready
// stops answering.
func (e *env) kill(s *standIn) {
	e.ready.Store(false)
	s.stop()
}

func (e *env) waitSidecar(up bool) {
	e.t.Helper()
	registrytest.Eventually(e.t, wait, "sidecar state", func() bool {
		return (e.a.Status().Sidecar.State == "up") == up
	})
}

// registered polls the registry (as another host sees it) until cond holds.
func (e *env) registered(service, what string, cond func([]registry.Endpoint) bool) []registry.Endpoint {
	e.t.Helper()
	var got []registry.Endpoint
	registrytest.Eventually(e.t, wait, what, func() bool {
		var err error
		got, err = e.other.List(context.Background(), service)
		return err == nil && cond(got)
	})
	return got
}

func one(addr string, md map[string]string) func([]registry.Endpoint) bool {
	return func(eps []registry.Endpoint) bool {
		if len(eps) != 1 || eps[0].Addr != addr {
			return false
		}
		for k, v := range md {
			if eps[0].Metadata[k] != v {
				return false
			}
		}
		for k := range eps[0].Metadata {
			if _, ok := md[k]; !ok {
				return false
			}
		}
		return true
	}
}

func none(eps []registry.Endpoint) bool { return len(eps) == 0 }

// answer polls Resolve until cond holds.
func (e *env) answer(service, what string, cond func(Answer) bool) Answer {
	e.t.Helper()
	var ans Answer
	registrytest.Eventually(e.t, wait, what, func() bool {
		var err error
		ans, err = e.a.Resolve(context.Background(), service)
		return err == nil && cond(ans)
	})
	return ans
}

func addrs(eps []Endpoint) []string {
	out := []string{}
	for _, e := range eps {
		out = append(out, e.Addr)
	}
	return out
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestMain(m *testing.M) {
	if os.Getenv(standInEnv) != "" {
		os.Exit(standInMain())
	}
	goleak.VerifyTestMain(m)
}

const wait = 20 * time.Second

// host is one agent as one host of a mesh: its own IP, data dir, registry
// client, and a switch for its sidecar's /ready.
type host struct {
	t       *testing.T
	ip      string
	cfg     config.Config
	reg     registry.Registry
	a       *agent.Agent
	ready   atomic.Bool
	sidecar *standIn
}

func newHost(t *testing.T, ip string, reg registry.Registry, dataDir string) *host {
	t.Helper()
	h := &host{t: t, ip: ip, reg: reg}
	c := config.Default()
	c.HostIP = ip
	c.DataDir = dataDir
	c.Sidecar.ProbeInterval = 20 * time.Millisecond
	c.Sidecar.ProbeTimeout = 100 * time.Millisecond
	c.HealthCheck.Interval = 100 * time.Millisecond
	c.HealthCheck.Timeout = 100 * time.Millisecond
	c.API.InitialWait = 5 * time.Second
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	h.cfg = c
	a, err := agent.New(c, reg,
		agent.WithLogger(zaptest.NewLogger(t).Named(ip)),
		agent.WithPortProbe(func(string, int) bool { return true }),
		agent.WithReadyProbe(func(context.Context, string) error {
			if h.ready.Load() {
				return nil
			}
			return errors.New("connection refused")
		}))
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	t.Cleanup(h.close)
	return h
}

func (h *host) close() {
	if h.sidecar != nil {
		h.sidecar.stop()
	}
	h.a.Close()
	h.reg.Close()
}

// standIn stands in for a sidecar's control stream: it acknowledges every
// snapshot.
type standIn struct {
	sess   *agent.SidecarSession
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	last   *sidecarpb.Snapshot
	once   sync.Once
}

func (h *host) startSidecar() {
	h.t.Helper()
	h.ready.Store(true)
	sess, err := h.a.SidecarConnect(&sidecarpb.Hello{AdminAddr: net.JoinHostPort(h.ip, "7702")})
	if err != nil {
		h.t.Fatal(err)
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
			s.mu.Unlock()
			sess.Ack(snap.Version)
		}
	}()
	h.sidecar = s
	registrytest.Eventually(h.t, wait, "sidecar up on "+h.ip, func() bool { return h.a.Status().Sidecar.State == "up" })
}

func (s *standIn) stop() {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		s.sess.Close()
	})
}

func (s *standIn) snapshot() *sidecarpb.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// killSidecar: the stream breaks and /ready stops answering.
func (h *host) killSidecar() {
	h.ready.Store(false)
	h.sidecar.stop()
	h.sidecar = nil
	registrytest.Eventually(h.t, wait, "sidecar down on "+h.ip, func() bool { return h.a.Status().Sidecar.State == "down" })
}

func (h *host) answer(svc, what string, cond func(agent.Answer) bool) agent.Answer {
	h.t.Helper()
	var ans agent.Answer
	registrytest.Eventually(h.t, wait, what, func() bool {
		var err error
		ans, err = h.a.Resolve(context.Background(), svc)
		return err == nil && cond(ans)
	})
	return ans
}

// listed polls the registry through h's client until cond holds.
func (h *host) listed(svc, what string, cond func([]registry.Endpoint) bool) []registry.Endpoint {
	h.t.Helper()
	var eps []registry.Endpoint
	registrytest.Eventually(h.t, wait, what, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		eps, err = h.reg.List(ctx, svc)
		return err == nil && cond(eps)
	})
	return eps
}

func addrsAre(want ...string) func(agent.Answer) bool {
	return func(a agent.Answer) bool {
		if len(a.Endpoints) != len(want) {
			return false
		}
		for i := range want {
			if a.Endpoints[i].Addr != want[i] {
				return false
			}
		}
		return true
	}
}

func oneAt(addr string, mesh string) func([]registry.Endpoint) bool {
	return func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == addr && eps[0].Metadata[agent.MetaMesh] == mesh
	}
}

func listen(t *testing.T, ip string) (net.Listener, int) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	return l, l.Addr().(*net.TCPAddr).Port
}

func uniqueService(t *testing.T) string {
	return fmt.Sprintf("e2e.svc-%d", time.Now().UnixNano())
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

type agentAnswer = agent.Answer

func publishReq(svc string, port int) agent.PublishRequest {
	return agent.PublishRequest{Service: svc, Port: port, Metadata: map[string]string{"owner": "e2e"}}
}

func itoa(n int) string { return strconv.Itoa(n) }

package control

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/detourmesh/detour/api/sidecarpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeAgent is a control server that records what the sidecar sends and
// sends what the test queues.
type fakeAgent struct {
	sidecarpb.UnimplementedSidecarControlServer
	out  chan *sidecarpb.Snapshot
	in   chan *sidecarpb.SidecarMessage
	kill chan struct{}
}

func (f *fakeAgent) Control(s sidecarpb.SidecarControl_ControlServer) error {
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := s.Recv()
			if err != nil {
				errc <- err
				return
			}
			f.in <- m
		}
	}()
	for {
		select {
		case snap := <-f.out:
			if err := s.Send(&sidecarpb.AgentMessage{Msg: &sidecarpb.AgentMessage_Snapshot{Snapshot: snap}}); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-f.kill:
			return errors.New("killed")
		}
	}
}

type fakeDP struct {
	mu      sync.Mutex
	applied uint64
	fail    map[uint64]bool
	changed chan struct{}
}

func (d *fakeDP) Apply(_ context.Context, s *sidecarpb.Snapshot) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail[s.GetVersion()] {
		return errors.New("bind 127.0.0.1:1: address in use")
	}
	d.applied = s.GetVersion()
	return nil
}
func (d *fakeDP) AppliedVersion() uint64 { d.mu.Lock(); defer d.mu.Unlock(); return d.applied }
func (d *fakeDP) Status() *sidecarpb.Status {
	return &sidecarpb.Status{AppliedVersion: d.AppliedVersion(), Apps: []*sidecarpb.AppHealth{{Service: "s", Healthy: true}}}
}
func (d *fakeDP) Changed() <-chan struct{} { return d.changed }

func next(t *testing.T, f *fakeAgent, want func(*sidecarpb.SidecarMessage) bool) *sidecarpb.SidecarMessage {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-f.in:
			if want(m) {
				return m
			}
		case <-timeout:
			t.Fatal("timed out waiting for a message from the sidecar")
		}
	}
}

func TestStream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAgent{out: make(chan *sidecarpb.Snapshot, 4), in: make(chan *sidecarpb.SidecarMessage, 64), kill: make(chan struct{})}
	g := grpc.NewServer()
	sidecarpb.RegisterSidecarControlServer(g, f)
	go g.Serve(l)
	defer g.Stop()

	dp := &fakeDP{fail: map[uint64]bool{2: true}, changed: make(chan struct{}, 1)}
	cfg := Default(l.Addr().String())
	cfg.AdminAddr, cfg.MinBackoff, cfg.NackRetry = "127.0.0.1:7702", 10*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(cfg, dp, zaptest.NewLogger(t)).Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	h := next(t, f, func(m *sidecarpb.SidecarMessage) bool { return m.GetHello() != nil })
	if h.GetHello().GetAdminAddr() != "127.0.0.1:7702" {
		t.Fatalf("hello: %v", h)
	}
	f.out <- &sidecarpb.Snapshot{Version: 1}
	next(t, f, func(m *sidecarpb.SidecarMessage) bool { return m.GetAck().GetVersion() == 1 })
	next(t, f, func(m *sidecarpb.SidecarMessage) bool { return len(m.GetStatus().GetApps()) == 1 })

	f.out <- &sidecarpb.Snapshot{Version: 2}
	n := next(t, f, func(m *sidecarpb.SidecarMessage) bool { return m.GetNack() != nil })
	if n.GetNack().GetVersion() != 2 || n.GetNack().GetReason() == "" {
		t.Fatalf("nack: %v", n)
	}
	// The rejected snapshot is retried and acknowledged once it applies.
	dp.mu.Lock()
	dp.fail = nil
	dp.mu.Unlock()
	next(t, f, func(m *sidecarpb.SidecarMessage) bool { return m.GetAck().GetVersion() == 2 })

	dp.changed <- struct{}{}
	next(t, f, func(m *sidecarpb.SidecarMessage) bool { return m.GetStatus() != nil })

	// The stream breaks: the client redials and says what it serves.
	close(f.kill)
	h = next(t, f, func(m *sidecarpb.SidecarMessage) bool { return m.GetHello() != nil })
	if h.GetHello().GetAppliedVersion() != 2 {
		t.Fatalf("hello after reconnect: %v", h)
	}
}

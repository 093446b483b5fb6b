package control

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// refusingAgent answers every Hello the way an agent that has another
// sidecar does, and records what the Hellos said.
type refusingAgent struct {
	sidecarpb.UnimplementedSidecarControlServer
	hellos chan *sidecarpb.Hello
}

func (r *refusingAgent) Control(s sidecarpb.SidecarControl_ControlServer) error {
	m, err := s.Recv()
	if err != nil {
		return err
	}
	r.hellos <- m.GetHello()
	return status.Error(codes.FailedPrecondition, "sidecar refused: another sidecar (admin 127.0.0.1:7702) is connected and ready")
}

// TestRefusedSaysSo: a sidecar the agent refuses says so plainly, at
// error level, keeps its instance across tries, and retries at the
// slowest pace.
func TestRefusedSaysSo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refusingAgent{hellos: make(chan *sidecarpb.Hello, 16)}
	g := grpc.NewServer()
	sidecarpb.RegisterSidecarControlServer(g, r)
	go g.Serve(l)
	defer g.Stop()

	core, logs := observer.New(zap.InfoLevel)
	cfg := Default(l.Addr().String())
	cfg.HostIP, cfg.MinBackoff, cfg.MaxBackoff = "127.0.0.7", time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(cfg, &fakeDP{changed: make(chan struct{})}, zap.New(core)).Run(ctx)
	}()
	first, second := <-r.hellos, <-r.hellos
	cancel()
	<-done
	if first.GetHostIp() != "127.0.0.7" || first.GetInstance() == "" || second.GetInstance() != first.GetInstance() {
		t.Fatalf("hellos = %v, %v: want the host_ip and one instance for the process", first, second)
	}
	refused := logs.FilterMessage("the agent refused this sidecar").All()
	if len(refused) == 0 || refused[0].Level != zap.ErrorLevel {
		t.Fatalf("no error-level refusal logged: %v", logs.All())
	}
}

package api

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// serveGRPC serves the agent's gRPC API on a loopback port and returns a
// client connection.
func serveGRPC(t *testing.T, e *env) *grpc.ClientConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	RegisterGRPC(s, e.a, WithSidecarLogger(zaptest.NewLogger(t)), WithHelloTimeout(200*time.Millisecond))
	go s.Serve(l)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); s.Stop() })
	return conn
}

func TestGRPCBadInput(t *testing.T) {
	e := newEnv(t)
	c := agentpb.NewAgentClient(serveGRPC(t, e))
	ctx := context.Background()
	if _, err := c.Publish(ctx, &agentpb.PublishRequest{Service: "kept", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	before := fingerprint(e.a)
	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"empty service", func() error { _, err := c.Publish(ctx, &agentpb.PublishRequest{Port: 1}); return err }, codes.InvalidArgument},
		{"bad service", func() error { _, err := c.Publish(ctx, &agentpb.PublishRequest{Service: "a b", Port: 1}); return err }, codes.InvalidArgument},
		{"port 0", func() error { _, err := c.Publish(ctx, &agentpb.PublishRequest{Service: "s"}); return err }, codes.InvalidArgument},
		{"port too big", func() error { _, err := c.Publish(ctx, &agentpb.PublishRequest{Service: "s", Port: 70000}); return err }, codes.InvalidArgument},
		{"protocol", func() error {
			_, err := c.Publish(ctx, &agentpb.PublishRequest{Service: "s", Port: 1, Protocol: "sctp"})
			return err
		}, codes.InvalidArgument},
		{"reserved metadata", func() error {
			_, err := c.Publish(ctx, &agentpb.PublishRequest{Service: "s", Port: 1, Metadata: map[string]string{"detour.port": "1"}})
			return err
		}, codes.InvalidArgument},
		{"conflict", func() error { _, err := c.Publish(ctx, &agentpb.PublishRequest{Service: "kept", Port: 9}); return err }, codes.AlreadyExists},
		{"unpublish unknown", func() error { _, err := c.Unpublish(ctx, &agentpb.UnpublishRequest{Service: "x", Port: 1}); return err }, codes.NotFound},
		{"unpublish bad port", func() error { _, err := c.Unpublish(ctx, &agentpb.UnpublishRequest{Service: "x"}); return err }, codes.InvalidArgument},
		{"resolve empty", func() error { _, err := c.Resolve(ctx, &agentpb.ResolveRequest{}); return err }, codes.InvalidArgument},
		{"mesh bad name", func() error { _, err := c.SetMesh(ctx, &agentpb.SetMeshRequest{Service: "/"}); return err }, codes.InvalidArgument},
		{"subscribe bad name", func() error {
			st, err := c.Subscribe(ctx, &agentpb.SubscribeRequest{Service: ".x"})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || status.Convert(err).Message() == "" {
				t.Fatalf("got %v, want %v with a message", err, tc.code)
			}
			if after := fingerprint(e.a); after != before {
				t.Fatalf("state changed:\n before %s\n after  %s", before, after)
			}
		})
	}
}

// TestGRPCSidecarStream drives the agent through a stand-in sidecar on
// the real control stream, and watches the answer through Subscribe.
func TestGRPCSidecarStream(t *testing.T) {
	e := newEnv(t)
	conn := serveGRPC(t, e)
	c := agentpb.NewAgentClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.other.Register(ctx, registry.Endpoint{Service: "svc", Addr: "10.0.0.2:9000"}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, &agentpb.SubscribeRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	recvUntil := func(what string, cond func(*agentpb.Answer) bool) *agentpb.Answer {
		t.Helper()
		for {
			a, err := sub.Recv()
			if err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			if cond(a) {
				return a
			}
		}
	}
	recvUntil("real endpoints", func(a *agentpb.Answer) bool { return len(a.Endpoints) == 1 && !a.Mesh })

	// A stand-in sidecar: Hello, then ack every snapshot.
	e.ready.Store(true)
	sctx, kill := context.WithCancel(ctx)
	ctl, err := sidecarpb.NewSidecarControlClient(conn).Control(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Hello{Hello: &sidecarpb.Hello{AdminAddr: "127.0.0.1:7702", Build: "stand-in"}}}); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			m, err := ctl.Recv()
			if err != nil {
				return
			}
			v := m.GetSnapshot().GetVersion()
			ctl.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Ack{Ack: &sidecarpb.Ack{Version: v}}})
			ctl.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Status{Status: &sidecarpb.Status{
				AppliedVersion: v,
				Listeners:      []*sidecarpb.ListenerStatus{{Listen: "127.0.0.1:30000", Service: "svc", Up: true}},
			}}})
		}
	}()
	a := recvUntil("the mesh answer", func(a *agentpb.Answer) bool { return a.Mesh })
	if a.Endpoints[0].Addr != "127.0.0.1:30000" || a.Fallback[0].Addr != "10.0.0.2:9000" || a.Governance.TimeoutMs != 3000 {
		t.Errorf("mesh answer = %v", a)
	}
	st, err := c.Status(ctx, &agentpb.StatusRequest{})
	if err != nil || st.Sidecar.State != "up" || len(st.Sidecar.Listeners) != 1 || st.Sidecar.AckedVersion == 0 {
		t.Fatalf("status = %v, %v", st.GetSidecar(), err)
	}

	// Kill it: the stream breaks and /ready stops answering.
	e.ready.Store(false)
	kill()
	<-stopped
	recvUntil("the fallback answer", func(a *agentpb.Answer) bool {
		return !a.Mesh && len(a.Endpoints) == 1 && a.Endpoints[0].Addr == "10.0.0.2:9000"
	})
}

func TestGRPCSidecarMustSayHello(t *testing.T) {
	e := newEnv(t)
	conn := serveGRPC(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ctl, err := sidecarpb.NewSidecarControlClient(conn).Control(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctl.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Ack{Ack: &sidecarpb.Ack{Version: 1}}})
	if _, err := ctl.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("stream without Hello: %v, want InvalidArgument", err)
	}
	// Silence is cut off after the hello timeout.
	ctl2, err := sidecarpb.NewSidecarControlClient(conn).Control(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl2.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("silent stream: %v, want InvalidArgument", err)
	}
	if e.a.Status().Sidecar.Connected {
		t.Error("a stream without Hello counted as a sidecar")
	}
}

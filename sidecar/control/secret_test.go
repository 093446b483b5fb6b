package control

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// secretAgent records the secret each stream carries and refuses it.
type secretAgent struct {
	sidecarpb.UnimplementedSidecarControlServer
	secrets chan string
}

func (a *secretAgent) Control(s sidecarpb.SidecarControl_ControlServer) error {
	md, _ := metadata.FromIncomingContext(s.Context())
	v := md.Get(secretKey)
	if len(v) == 0 {
		v = []string{""}
	}
	a.secrets <- v[0]
	return status.Error(codes.Unauthenticated, "no")
}

// TestSecretSentAndReread: the sidecar sends the agent's per-boot secret
// in its stream's metadata and reads the file again at each dial, so an
// agent restarted with a new secret takes it back.
func TestSecretSentAndReread(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &secretAgent{secrets: make(chan string, 64)}
	g := grpc.NewServer()
	sidecarpb.RegisterSidecarControlServer(g, a)
	go g.Serve(l)
	defer g.Stop()

	file := filepath.Join(t.TempDir(), "sidecar.secret")
	if err := os.WriteFile(file, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Default(l.Addr().String())
	cfg.SecretFile, cfg.MinBackoff, cfg.MaxBackoff = file, time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(cfg, &fakeDP{changed: make(chan struct{})}, zaptest.NewLogger(t)).Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	if got := <-a.secrets; got != "first" {
		t.Fatalf("first stream's secret %q", got)
	}
	if err := os.WriteFile(file, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-a.secrets:
			if got == "second" {
				return
			}
		case <-deadline:
			t.Fatal("the new secret was never sent")
		}
	}
}

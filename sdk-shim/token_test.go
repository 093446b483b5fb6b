package shim_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/detourmesh/detour/api/agentpb"
	shim "github.com/detourmesh/detour/sdk-shim"
)

// tokenAgent answers Publish and records the token each call carried.
type tokenAgent struct {
	agentpb.UnimplementedAgentServer
	tokens chan string
}

func (a *tokenAgent) Publish(ctx context.Context, req *agentpb.PublishRequest) (*agentpb.Publication, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tok := ""
	if v := md.Get("x-detour-token"); len(v) > 0 {
		tok = v[0]
	}
	a.tokens <- tok
	return &agentpb.Publication{Service: req.GetService(), Port: req.GetPort()}, nil
}

// TestWithToken: an app given the agent's token sends it with its
// publish (an agent with a token refuses the publish without it); one
// without sends none.
func TestWithToken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &tokenAgent{tokens: make(chan string, 8)}
	s := grpc.NewServer()
	agentpb.RegisterAgentServer(s, a)
	go s.Serve(l)
	defer s.Stop()
	for _, tok := range []string{"app-token", ""} {
		cfg := shim.Default()
		cfg.Agent = l.Addr().String()
		c, err := shim.New(cfg, shim.WithToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := c.Publish(ctx, shim.PublishRequest{Service: "s", Port: 8080}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if got := <-a.tokens; got != tok {
			t.Errorf("token sent %q, want %q", got, tok)
		}
		c.Close()
	}
}

// Command greeter-server is the example gRPC server: it serves Greeter and
// grpc.health.v1, and publishes itself through the naming agent with the
// SDK shim, so the mesh fronts it without it knowing.
//
//	greeter-server --listen 127.0.0.1:50051 --agent 127.0.0.1:7701
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/detourmesh/detour/examples/greeter/greeterpb"
	"github.com/detourmesh/detour/internal/version"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("greeter-server: %v", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("greeter-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:50051", "address to serve on")
	service := fs.String("service", "greeter", "service name to publish")
	agent := fs.String("agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("greeter-server"))
		return nil
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port

	srv := grpc.NewServer()
	greeterpb.RegisterGreeterServer(srv, &greeter{host: ln.Addr().String()})
	hs := health.NewServer()
	grpc_health_v1.RegisterHealthServer(srv, hs)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	cfg := shim.Default()
	cfg.Agent = *agent
	c, err := shim.New(cfg, shim.WithToken(os.Getenv(shim.TokenEnv))) // an agent with a token refuses publish without it
	if err != nil {
		srv.Stop()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pubCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = c.Publish(pubCtx, shim.PublishRequest{
		Service: *service, Port: port, Protocol: "grpc",
		Health: shim.HealthCheck{Type: "grpc"},
	})
	cancel()
	if err != nil {
		c.Close()
		srv.Stop()
		return fmt.Errorf("publish: %w", err)
	}
	log.Printf("greeter-server: serving %s on %s, published through the agent at %s", *service, ln.Addr(), *agent)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		c.Close()
		return err
	}
	// Leave the registry first, then let in-flight calls finish.
	hs.Shutdown()
	c.Close()
	srv.GracefulStop()
	log.Printf("greeter-server: stopped")
	return nil
}

type greeter struct {
	greeterpb.UnimplementedGreeterServer
	host string
}

func (g *greeter) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "hello, " + req.GetName(), Host: g.host}, nil
}

func (g *greeter) Chat(stream greeterpb.Greeter_ChatServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "hello, " + req.GetName(), Host: g.host}); err != nil {
			return err
		}
	}
}

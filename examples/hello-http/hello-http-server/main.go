// Command hello-http-server is the example HTTP server: it serves
// GET /hello?name= and GET /healthz, and publishes itself through the
// naming agent with the SDK shim, so the mesh fronts it without it
// knowing. Each answer names the server in the X-Served-By header.
//
//	hello-http-server --listen 127.0.0.1:8080 --agent 127.0.0.1:7701
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/detourmesh/detour/internal/version"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("hello-http-server: %v", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("hello-http-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	service := fs.String("service", "hello-http", "service name to publish")
	agent := fs.String("agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("hello-http-server"))
		return nil
	}
	if *service == "" {
		return errors.New("--service: must not be empty")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	host := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", host)
		fmt.Fprintf(w, "hello, %s\n", r.URL.Query().Get("name"))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	cfg := shim.Default()
	cfg.Agent = *agent
	c, err := shim.New(cfg, shim.WithToken(os.Getenv(shim.TokenEnv))) // an agent with a token refuses publish without it
	if err != nil {
		srv.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pubCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = c.Publish(pubCtx, shim.PublishRequest{
		Service: *service, Port: port, Protocol: "http",
		Health: shim.HealthCheck{Type: "http", Path: "/healthz"},
	})
	cancel()
	if err != nil {
		c.Close()
		srv.Close()
		return fmt.Errorf("publish: %w", err)
	}
	log.Printf("hello-http-server: serving %s on %s, published through the agent at %s", *service, host, *agent)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		c.Close()
		return err
	}
	// Leave the registry first, then let in-flight requests finish.
	c.Close()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Printf("hello-http-server: stopped")
	return nil
}

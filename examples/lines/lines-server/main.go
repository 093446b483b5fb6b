// Command lines-server is the example plain TCP server: each line it
// receives is answered with "ADDR: LINE" uppercased, ADDR being its listen
// address. It publishes itself through the naming agent with the SDK shim
// as protocol "tcp", so the mesh fronts it at L4 without knowing the
// protocol.
//
//	lines-server --listen 127.0.0.1:7070 --agent 127.0.0.1:7701
//	lines-server --listen 127.0.0.1:7070 --agent ''   # not published
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/detourmesh/detour/internal/version"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("lines-server: %v", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("lines-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:7070", "address to serve on")
	service := fs.String("service", "lines", "service name to publish")
	agent := fs.String("agent", "127.0.0.1:7701", `the naming agent's gRPC address; "": serve without publishing (an app registered by its own registry client, through a front end)`)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("lines-server"))
		return nil
	}
	if *service == "" {
		return errors.New("--service: must not be empty")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	s := &server{host: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.serve(ln) }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *agent == "" {
		log.Printf("lines-server: serving on %s, not published", s.host)
		select {
		case <-ctx.Done():
		case err := <-serveErr:
			return err
		}
		ln.Close()
		s.closeConns()
		return nil
	}
	cfg := shim.Default()
	cfg.Agent = *agent
	c, err := shim.New(cfg, shim.WithToken(os.Getenv(shim.TokenEnv))) // an agent with a token refuses publish without it
	if err != nil {
		ln.Close()
		return err
	}
	pubCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = c.Publish(pubCtx, shim.PublishRequest{
		Service: *service, Port: ln.Addr().(*net.TCPAddr).Port, Protocol: "tcp",
		Health: shim.HealthCheck{Type: "tcp"},
	})
	cancel()
	if err != nil {
		c.Close()
		ln.Close()
		return fmt.Errorf("publish: %w", err)
	}
	log.Printf("lines-server: serving %s on %s, published through the agent at %s", *service, s.host, *agent)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		c.Close()
		return err
	}
	// Leave the registry first, then stop accepting and end the
	// connections (a line protocol has no end of call to wait for).
	c.Close()
	ln.Close()
	s.closeConns()
	log.Printf("lines-server: stopped")
	return nil
}

type server struct {
	host string
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (s *server) serve(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		if !s.track(conn) {
			conn.Close()
			return nil
		}
		go s.handle(conn)
	}
}

// handle answers each line of conn until it ends.
func (s *server) handle(conn net.Conn) {
	defer s.wg.Done()
	defer s.untrack(conn)
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if _, err := fmt.Fprintf(conn, "%s: %s\n", s.host, strings.ToUpper(sc.Text())); err != nil {
			return
		}
	}
}

func (s *server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1) // under mu: closeConns waits for it
	return true
}

func (s *server) untrack(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, conn)
	conn.Close()
}

// closeConns closes every connection and waits for their handlers.
func (s *server) closeConns() {
	s.mu.Lock()
	s.closed = true
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

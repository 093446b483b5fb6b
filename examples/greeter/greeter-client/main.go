// Command greeter-client calls the example greeter at a steady rate
// through the SDK shim and prints what it sees once a second:
//
//	greeter-client: ok=120 failed=0 mesh=true via=127.0.0.2:30000 from=127.0.0.3:50051
//
// The counts are cumulative; the last line, "total ok=N failed=M", is
// printed on exit (after --duration, or on SIGINT/SIGTERM). Its own retry
// policy (--retries) applies only while the mesh does not carry the
// service: the shim says so, and the sidecar retries otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/detourmesh/detour/examples/greeter/greeterpb"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("greeter-client: %v", err)
	}
}

type counts struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	from       string
	lastErr    string
}

func run(args []string) error {
	fs := flag.NewFlagSet("greeter-client", flag.ContinueOnError)
	service := fs.String("service", "greeter", "service to call")
	agent := fs.String("agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	rate := fs.Int("rate", 50, "calls per second")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	timeout := fs.Duration("timeout", time.Second, "deadline of each call")
	retries := fs.Int("retries", 2, "the app's own retries on UNAVAILABLE, used while the mesh does not carry the service")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate < 1 || *rate > 10000 {
		return fmt.Errorf("--rate %d: must be 1-10000", *rate)
	}
	if *retries < 0 || *retries > 4 {
		return fmt.Errorf("--retries %d: must be 0-4 (gRPC allows 5 attempts)", *retries)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	cfg := shim.Default()
	cfg.Agent = *agent
	c, err := shim.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	policy := fmt.Sprintf(`{"methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":%d,"initialBackoff":"0.05s","maxBackoff":"0.5s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}`, *retries+1)
	opts := append(c.DialOptions(shim.WithServiceConfig(policy)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient("detour:///"+*service, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	gc := greeterpb.NewGreeterClient(conn)

	updates, err := c.Watch(ctx, *service)
	if err != nil {
		return err
	}
	var answer atomic.Pointer[shim.Answer]
	go func() {
		for u := range updates {
			if u.Err == nil {
				a := u.Answer
				answer.Store(&a)
			}
		}
	}()

	var n counts
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	every := time.NewTicker(time.Second)
	defer every.Stop()
	sem := make(chan struct{}, 256) // bounds calls in flight
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			report(&n, answer.Load())
			fmt.Printf("greeter-client: total ok=%d failed=%d\n", n.ok.Load(), n.failed.Load())
			return nil
		case <-every.C:
			report(&n, answer.Load())
		case <-tick.C:
			select {
			case sem <- struct{}{}:
			default:
				n.failed.Add(1) // too many in flight: count it, do not queue
				continue
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				call(ctx, gc, &n, *timeout, i)
			}(i)
		}
	}
}

func call(ctx context.Context, gc greeterpb.GreeterClient, n *counts, timeout time.Duration, i int) {
	// The call gets its own deadline, not the run's: calls started before
	// the end finish and count.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	reply, err := gc.SayHello(cctx, &greeterpb.HelloRequest{Name: fmt.Sprintf("call-%d", i)})
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.failed.Add(1)
		if msg := err.Error(); msg != n.lastErr {
			n.lastErr = msg
			log.Printf("greeter-client: call failed: %v", err)
		}
		return
	}
	n.ok.Add(1)
	n.from = reply.GetHost()
}

func report(n *counts, a *shim.Answer) {
	n.mu.Lock()
	from := n.from
	n.mu.Unlock()
	mesh, via := false, "-"
	if a != nil {
		mesh, via = a.Mesh, strings.Join(a.Endpoints, ",")
	}
	fmt.Printf("greeter-client: ok=%d failed=%d mesh=%t via=%s from=%s\n", n.ok.Load(), n.failed.Load(), mesh, via, from)
}

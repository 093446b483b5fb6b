// Command greeter-client calls the example greeter at a steady rate
// through the SDK shim and prints what it sees once a second:
//
//	greeter-client: ok=120 failed=0 mesh=true via=127.0.0.2:30000 from=127.0.0.3:50051 inflight=0
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
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/detourmesh/detour/examples/greeter/greeterpb"
	"github.com/detourmesh/detour/examples/internal/load"
	"github.com/detourmesh/detour/internal/version"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("greeter-client: %v", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("greeter-client", flag.ContinueOnError)
	service := fs.String("service", "greeter", "service to call")
	agent := fs.String("agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	rate := fs.Int("rate", 50, "calls per second")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	timeout := fs.Duration("timeout", time.Second, "deadline of each call")
	retries := fs.Int("retries", 2, "the app's own retries on UNAVAILABLE, used while the mesh does not carry the service")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("greeter-client"))
		return nil
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
	c, err := shim.New(cfg, shim.WithToken(os.Getenv(shim.TokenEnv))) // for an agent with api.token_for_reads
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

	f, err := load.Follow(ctx, c, *service)
	if err != nil {
		return err
	}
	var n load.Counts
	load.Run(ctx, os.Stdout, "greeter-client", *rate, &n, f, load.NewConcurrent(256, func(i int) {
		call(ctx, gc, &n, *timeout, i)
	}))
	return nil
}

func call(ctx context.Context, gc greeterpb.GreeterClient, n *load.Counts, timeout time.Duration, i int) {
	// The call gets its own deadline, not the run's: calls started before
	// the end finish and count.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	reply, err := gc.SayHello(cctx, &greeterpb.HelloRequest{Name: fmt.Sprintf("call-%d", i)})
	if err != nil {
		n.Fail("greeter-client", err)
		return
	}
	n.Succeed(reply.GetHost())
}

// Package grpcload is the gRPC side of the benchmarks: an origin server
// (the greeter example's service, answering at once) and a closed-loop
// load generator for unary calls and for messages on bidi streams.
//
// Written here rather than taken from a tool: ghz is not packaged by
// Debian, and the load must be the same program for the direct and the
// mesh rows.
package grpcload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/detourmesh/detour/examples/greeter/greeterpb"
)

// Serve answers the greeter service on lis until it fails.
func Serve(lis net.Listener) error {
	s := grpc.NewServer()
	greeterpb.RegisterGreeterServer(s, origin{})
	return s.Serve(lis)
}

type origin struct {
	greeterpb.UnimplementedGreeterServer
}

func (origin) SayHello(_ context.Context, in *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "hello " + in.GetName()}, nil
}

func (origin) Chat(s greeterpb.Greeter_ChatServer) error {
	for {
		in, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&greeterpb.HelloReply{Message: "hello " + in.GetName()}); err != nil {
			return err
		}
	}
}

// Result is one load run: completed calls (or stream messages answered),
// failures, and the latency of each completed one.
type Result struct {
	Calls    int64         `json:"calls"`
	Errors   int64         `json:"errors"`
	Duration time.Duration `json:"duration_ns"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
}

// PerSecond is completed calls per second.
func (r Result) PerSecond() float64 { return float64(r.Calls) / r.Duration.Seconds() }

// Mode is what each worker does in a loop.
type Mode string

const (
	Unary  Mode = "unary"  // one SayHello after another
	Stream Mode = "stream" // one Chat stream, a message and its answer at a time
)

// Run keeps conc workers busy against target for d, spread over conns
// connections (an app's gRPC client uses one; a multi-core load uses a
// few, as ghz does), and measures every call.
func Run(ctx context.Context, target string, mode Mode, conc, conns int, d time.Duration) (Result, error) {
	if conc < 1 || conns < 1 || conns > conc {
		return Result{}, fmt.Errorf("grpcload: %d calls on %d connections: want 1 ≤ connections ≤ calls", conc, conns)
	}
	clients := make([]greeterpb.GreeterClient, conns)
	for i := range clients {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return Result{}, err
		}
		defer cc.Close()
		clients[i] = greeterpb.NewGreeterClient(cc)
		// One call first on each, so connection set-up is not in the
		// figures.
		if _, err := clients[i].SayHello(ctx, &greeterpb.HelloRequest{Name: "warm-up"}); err != nil {
			return Result{}, fmt.Errorf("grpcload: first call to %s: %w", target, err)
		}
	}
	// Workers stop starting calls at end; calls in flight finish, so the
	// end of the run is not counted as failures.
	end := time.Now().Add(d)
	lat := make([][]time.Duration, conc)
	errs := make([]int64, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[w], errs[w] = work(ctx, clients[w%conns], mode, end)
		}()
	}
	wg.Wait()
	r := Result{Duration: time.Since(start)}
	var all []time.Duration
	for w := range conc {
		all = append(all, lat[w]...)
		r.Errors += errs[w]
	}
	r.Calls = int64(len(all))
	if r.Calls == 0 {
		return r, fmt.Errorf("grpcload: no call to %s completed (%d errors)", target, r.Errors)
	}
	slices.Sort(all)
	r.P50, r.P99 = all[len(all)/2], all[len(all)*99/100]
	return r, nil
}

// work runs calls until end or until ctx is cancelled.
func work(ctx context.Context, c greeterpb.GreeterClient, mode Mode, end time.Time) (lat []time.Duration, errs int64) {
	req := &greeterpb.HelloRequest{Name: "bench"}
	if mode == Unary {
		for ctx.Err() == nil && time.Now().Before(end) {
			t := time.Now()
			if _, err := c.SayHello(ctx, req); err != nil {
				errs++
				continue
			}
			lat = append(lat, time.Since(t))
		}
		return lat, errs
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.Chat(sctx)
	if err != nil {
		return nil, 1
	}
	for ctx.Err() == nil && time.Now().Before(end) {
		t := time.Now()
		if err := s.Send(req); err != nil {
			return lat, errs + 1
		}
		if _, err := s.Recv(); err != nil {
			return lat, errs + 1
		}
		lat = append(lat, time.Since(t))
	}
	_ = s.CloseSend()
	return lat, errs
}

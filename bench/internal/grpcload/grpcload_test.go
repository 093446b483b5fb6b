package grpcload

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestRunAgainstOrigin(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go Serve(lis)
	defer lis.Close()
	for _, m := range []Mode{Unary, Stream} {
		r, err := Run(context.Background(), lis.Addr().String(), m, 4, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if r.Calls < 10 || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Fatalf("%s: implausible result %+v", m, r)
		}
	}
}

func TestRunNoServer(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Run(ctx, addr, Unary, 2, 100*time.Millisecond); err == nil {
		t.Fatal("no server: no error")
	}
}

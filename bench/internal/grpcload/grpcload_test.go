package grpcload

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the connections the origin accepted.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func TestRunAgainstOrigin(t *testing.T) {
	for _, tc := range []struct {
		mode        Mode
		conc, conns int
	}{{Unary, 4, 1}, {Stream, 4, 1}, {Unary, 6, 3}, {Stream, 6, 3}} {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis := &countingListener{Listener: inner}
		go Serve(lis)
		r, err := Run(context.Background(), lis.Addr().String(), tc.mode, tc.conc, tc.conns, 200*time.Millisecond)
		lis.Close()
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if r.Calls < 10 || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Fatalf("%+v: implausible result %+v", tc, r)
		}
		if n := lis.n.Load(); n != int64(tc.conns) {
			t.Fatalf("%+v: the origin accepted %d connections, want %d", tc, n, tc.conns)
		}
	}
}

func TestRunBadSettings(t *testing.T) {
	for _, s := range [][2]int{{0, 1}, {2, 0}, {2, 3}} {
		if _, err := Run(context.Background(), "127.0.0.1:1", Unary, s[0], s[1], time.Millisecond); err == nil {
			t.Errorf("%d calls on %d connections: accepted", s[0], s[1])
		}
	}
}

func TestRunNoServer(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Run(ctx, addr, Unary, 2, 1, 100*time.Millisecond); err == nil {
		t.Fatal("no server: no error")
	}
}

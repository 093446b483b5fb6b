package listener

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
)

// hold keeps each connection open until the client closes it.
type hold struct{}

func (hold) ServeConn(c net.Conn) { io.Copy(io.Discard, c); c.Close() }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestMaxConns: with the cap reached the next connection is closed at
// once (a plain close: EOF, no reset) and counted conn_limit; once one
// closes, a new one is taken again.
func TestMaxConns(t *testing.T) {
	const max = 5
	m := New()
	c := &stats.Counters{}
	if err := m.Apply([]Spec{{Listen: "127.0.0.1:0", Key: "k", Counters: c, MaxConns: max, New: func(net.Addr) Handler { return hold{} }}}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	}()
	addr := m.Addr("127.0.0.1:0").String()
	var open []net.Conn
	for range max {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		open = append(open, conn)
	}
	eventually(t, "the connections accepted", func() bool { return c.ConnsActive.Load() == max })
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("connection %d: %d bytes, %v; want a plain close", max+1, n, err)
	}
	if got := c.Failures[stats.ConnLimit].Load(); got != 1 {
		t.Fatalf("conn_limit %d, want 1", got)
	}
	open[0].Close()
	eventually(t, "a connection to close", func() bool { return c.ConnsActive.Load() == max-1 })
	again, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	eventually(t, "a new connection taken", func() bool { return c.ConnsActive.Load() == max })
	if got := c.Failures[stats.ConnLimit].Load(); got != 1 || c.ConnsTotal.Load() != max+1 {
		t.Fatalf("conn_limit %d, total %d", got, c.ConnsTotal.Load())
	}
}

package listener

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reply answers every connection with its text and closes it.
type reply string

func (r reply) ServeConn(c net.Conn) { c.Write([]byte(r)); c.Close() }

func read(t *testing.T, addr net.Addr) string {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		return "refused"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func spec(listen, key string) Spec {
	return Spec{Listen: listen, Key: key, New: func(net.Addr) Handler { return reply(key) }}
}

func TestApplyLive(t *testing.T) {
	m := New(WithLogger(zaptest.NewLogger(t)))
	a, b := "127.0.0.1:0", "127.0.0.2:0"
	if err := m.Apply([]Spec{spec(a, "one")}); err != nil {
		t.Fatal(err)
	}
	addrA := m.Addr(a)
	if got := read(t, addrA); got != "one" {
		t.Fatal(got)
	}
	// Changing the key swaps the handler on the same socket.
	if err := m.Apply([]Spec{spec(a, "two"), spec(b, "bee")}); err != nil {
		t.Fatal(err)
	}
	if m.Addr(a).String() != addrA.String() || read(t, addrA) != "two" || read(t, m.Addr(b)) != "bee" {
		t.Fatal("change or add")
	}
	addrB := m.Addr(b)
	// A failed bind changes nothing.
	taken, _ := net.Listen("tcp", "127.0.0.3:0")
	defer taken.Close()
	err := m.Apply([]Spec{spec(a, "three"), spec(taken.Addr().String(), "x")})
	if err == nil || !strings.Contains(err.Error(), "bind") {
		t.Fatalf("bind error: %v", err)
	}
	if read(t, addrA) != "two" || read(t, addrB) != "bee" {
		t.Fatal("a failed apply changed the running state")
	}
	// Removal.
	if err := m.Apply([]Spec{spec(a, "two")}); err != nil {
		t.Fatal(err)
	}
	if read(t, addrB) != "refused" {
		t.Fatal("removed listener still up")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if read(t, addrA) != "refused" {
		t.Fatal("listener up after shutdown")
	}
	if err := m.Apply(nil); err == nil {
		t.Fatal("apply after shutdown")
	}
}

package dubbo

import (
	"net"
	"testing"
	"time"
)

// A write that fails is the writer's error from then on, and fail runs
// once (it closes the connection in the proxy).
func TestWriterFailsOnce(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	failed := make(chan error, 4)
	w := newWriter(c1, 64, func(err error) { failed <- err })
	go func() { buf := make([]byte, 64); c2.Read(buf); c2.Close() }()
	if err := w.write(Heartbeat(1), nil); err != nil {
		t.Fatalf("first write: %v", err)
	}
	for range 3 {
		if err := w.write(Heartbeat(2), nil); err == nil {
			t.Fatal("a write after the peer closed succeeded")
		}
	}
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("fail not called")
	}
	select {
	case err := <-failed:
		t.Fatalf("fail called twice: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}

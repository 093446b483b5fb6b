package main

import (
	"strings"
	"testing"
	"time"
)

func TestQueueDepth(t *testing.T) {
	for _, c := range []struct {
		rate, conns int
		timeout     time.Duration
		want        int
	}{
		{100, 4, time.Second, 100}, // a timeout's worth of ticks
		{1, 4, time.Second, 4},     // never fewer than the connections
		{10000, 4, time.Hour, 10000},
		{100, 4, 50 * time.Millisecond, 5},
	} {
		if got := queueDepth(c.rate, c.conns, c.timeout); got != c.want {
			t.Errorf("queueDepth(%d, %d, %v) = %d, want %d", c.rate, c.conns, c.timeout, got, c.want)
		}
	}
}

// TestLineLate: a line that waited past its deadline for a connection
// fails with its reason, without a dial.
func TestLineLate(t *testing.T) {
	w := &worker{} // no client: a dial would panic
	_, err := w.send(7, time.Now().Add(-time.Second))
	if err == nil || !strings.Contains(err.Error(), "no connection free within --timeout") {
		t.Fatalf("got %v", err)
	}
}

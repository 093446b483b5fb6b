package main

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestRestartSignal: SIGUSR2 ends the context and marks the registry
// session to be kept (the package upgrade's restart).
func TestRestartSignal(t *testing.T) {
	defer keepSession.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = restartOnSignal(ctx)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR2 did not end the context")
	}
	if !keepSession.Load() {
		t.Fatal("keepSession not set")
	}
}

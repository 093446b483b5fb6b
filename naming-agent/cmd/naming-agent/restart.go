package main

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/detourmesh/detour/internal/sdnotify"
)

// exitRestart is the exit code after SIGUSR2. The systemd unit lists it
// in RestartForceExitStatus= and SuccessExitStatus=, so systemd starts
// the (new) binary again at once and does not count a failure.
const exitRestart = 75

// keepSession is set by SIGUSR2: the agent stops without closing its
// registry client, so nothing is deregistered; the next run takes the
// registry session back from DATA_DIR/registry-session, the path a crash
// takes. SIGTERM still deregisters (a host leaving the mesh).
var keepSession atomic.Bool

// restartOnSignal returns ctx, also ended by SIGUSR2 after setting
// keepSession.
func restartOnSignal(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	go func() {
		select {
		case <-ch:
			keepSession.Store(true)
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx
}

// notifyReady tells systemd (Type=notify) the agent serves: run calls it
// once both API listeners accept.
func notifyReady(_, _ string) { sdnotify.Ready() }

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/dataplane"
)

// sigHandover asks the serving sidecar to hand over to a new process.
const sigHandover = syscall.SIGHUP

// listenAdmin binds the admin address, or takes the inherited socket.
func listenAdmin(addr string, ho *handover) (net.Listener, error) {
	if ho != nil {
		f := fdFile(ho.Admin, "admin")
		defer f.Close()
		return net.FileListener(f)
	}
	return net.Listen("tcp", addr)
}

// takeOver applies the old process's snapshot on the inherited sockets.
func takeOver(ctx context.Context, dp *dataplane.Dataplane, socks *sockets, ho *handover) error {
	snap, err := readSnapshot(ho.Snapshot)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if snap != nil {
		if err := dp.Apply(ctx, snap); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
	}
	socks.closeUnused()
	socks.open() // the whole snapshot is in place: accept
	return nil
}

// instanceName is the control stream's instance: the old process's after
// a hand-over, so the agent takes the new stream for a reconnect.
func instanceName(ho *handover) string {
	if ho != nil && ho.Instance != "" {
		return ho.Instance
	}
	return fmt.Sprintf("%016x", rand.Uint64())
}

// serveUntil serves until ctx ends (false: the caller drains as usual) or
// a hand-over succeeds (true, with the exit code after this process
// drained). A failed hand-over is logged and recorded for --reload; this
// process goes on serving.
func serveUntil(ctx context.Context, f flags, log *zap.Logger, dp *dataplane.Dataplane, ln net.Listener, socks *sockets,
	instance string, adminSrv *http.Server, stopControl context.CancelFunc, controlDone <-chan struct{}) (int, bool) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, sigHandover)
	defer signal.Stop(hup)
	tl, _ := ln.(*net.TCPListener)
	for {
		select {
		case <-ctx.Done():
			return 0, false
		case <-hup:
		}
		start := time.Now()
		conf, err := dp.ConfigJSON()
		switch {
		case err != nil:
		case !dp.Ready():
			err = fmt.Errorf("this sidecar has no config yet: restart it instead")
		case tl == nil:
			err = fmt.Errorf("admin listener is not TCP")
		}
		var pid int
		if err == nil {
			log.Info("hand-over: starting the new process")
			pid, err = startSuccessor(ctx, tl, socks, instance, conf, f.handoverTimeout)
		}
		if err != nil {
			log.Error("hand-over failed; still serving", zap.Error(err))
			if f.pidFile != "" {
				os.WriteFile(handoverStatusFile(f.pidFile), []byte("hand-over failed: "+err.Error()), 0o644)
			}
			continue
		}
		log.Info("hand-over: the new process serves; draining", zap.Int("pid", pid), zap.Duration("took", time.Since(start)),
			zap.Duration("deadline", f.drain))
		stopControl() // the successor's stream, same instance, replaces ours
		<-controlDone
		dctx, cancel := context.WithTimeout(context.Background(), f.drain)
		defer cancel()
		adminSrv.Shutdown(dctx)
		drainStart := time.Now()
		err = dp.HandOff(dctx)
		adminSrv.Close()
		log.Info("hand-over: drained", zap.Duration("drain", time.Since(drainStart)), zap.Error(err))
		if err != nil {
			return 1, true
		}
		return 0, true
	}
}

// removePIDFile removes path if it still names this process (after a
// hand-over it names the successor).
func removePIDFile(path string) {
	if path != "" && readPID(path) == os.Getpid() {
		os.Remove(path)
	}
}

// firstApply is the dataplane as the control client sees it; applied is
// closed at the first snapshot the agent sends, i.e. once the agent has
// this process's stream.
type firstApply struct {
	*dataplane.Dataplane
	once    sync.Once
	applied chan struct{}
}

func (f *firstApply) Apply(ctx context.Context, snap *sidecarpb.Snapshot) error {
	err := f.Dataplane.Apply(ctx, snap)
	f.once.Do(func() { close(f.applied) })
	return err
}

// wait waits for the first snapshot from the agent, at most d (an agent
// that is down must not hold an upgrade up: its own restart will find the
// new sidecar).
func (f *firstApply) wait(ctx context.Context, log *zap.Logger, d time.Duration) {
	select {
	case <-f.applied:
	case <-ctx.Done():
	case <-time.After(d):
		log.Warn("hand-over: no snapshot from the agent yet; going on", zap.Duration("waited", d))
	}
}

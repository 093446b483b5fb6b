package main

import (
	"context"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/internal/sdnotify"
	"github.com/detourmesh/detour/sidecar/dataplane"
)

// notifyWhenReady sends READY=1 to systemd once dp has applied its first
// snapshot from the agent (its listeners are up), so `systemctl start`
// returns when the sidecar carries traffic. Outside systemd it is a no-op.
func notifyWhenReady(ctx context.Context, dp *dataplane.Dataplane, log *zap.Logger, onReady func()) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !dp.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	onReady()
	if sent, err := sdnotify.Ready(); err != nil {
		log.Warn("sd_notify", zap.Error(err))
	} else if sent {
		log.Info("told systemd: ready")
	}
}

// writePIDFile writes the PID atomically (rename), so a reader never sees
// a half-written file. It is written after the admin address is bound: a
// second sidecar started by hand fails on that bind and never overwrites
// the serving one's PID.
func writePIDFile(path string) error {
	if path == "" {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpReady is the default sidecar probe: GET http://ADMIN/ready, 200 is
// ready. Keep-alives are off so a dead sidecar is seen at once.
func httpReady(timeout time.Duration) func(ctx context.Context, adminAddr string) error {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	return func(ctx context.Context, adminAddr string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/ready", nil)
		if err != nil {
			return fmt.Errorf("sidecar probe: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("sidecar probe: %w", err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sidecar probe: /ready answered %d", resp.StatusCode)
		}
		return nil
	}
}

// probeLoop probes the sidecar's /ready every probe interval, and at once
// when the control stream opens or breaks.
func (a *Agent) probeLoop() {
	t := time.NewTicker(a.cfg.Sidecar.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		case <-a.probeNow:
		}
		a.mu.Lock()
		addr := a.sc.adminAddr
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(a.ctx, a.cfg.Sidecar.ProbeTimeout)
		err := a.opts.ready(ctx, addr)
		cancel()
		if a.ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		a.sc.probed(err == nil)
		wasUp, wasSettled := a.sc.up, a.sc.settled
		a.sc.decide(a.cfg.Sidecar, a.opts.now(), a.onSidecarTransitionLocked)
		if a.sc.up != wasUp || a.sc.settled != wasSettled {
			a.updateLocked()
		}
		a.mu.Unlock()
	}
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// The times printed after a kill or a restart are polled for every
// millisecond: the testbed's Poll backs off to 50 ms, which would make a
// takeover of 9 ms read as 16.

// pollFine calls cond every millisecond until it holds, 20 s pass or the
// demo is interrupted.
func (d *demo) pollFine(what string, cond func() bool) error {
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after 20s waiting for: %s", what)
		}
		select {
		case <-d.ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, d.ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// waitAnswerFine is Host.WaitAnswer, polled every millisecond.
func (d *demo) waitAnswerFine(h *testbed.Host, what string, cond func(testbed.Answer) bool) (testbed.Answer, error) {
	var last testbed.Answer
	err := d.pollFine(fmt.Sprintf("%s on %s: %s", service, h.IP, what), func() bool {
		ctx, cancel := context.WithTimeout(d.ctx, 2*time.Second)
		defer cancel()
		a, err := h.API().Resolve(ctx, service)
		last = a
		return err == nil && cond(a)
	})
	return last, err
}

// Package load drives the example clients: calls at a steady rate,
// counted, and reported once a second, and at once on SIGUSR1, in the one
// line format that the demo and the integration suite read:
//
//	NAME: ok=N failed=M mesh=BOOL via=ADDR from=ADDR inflight=K
//
// and "NAME: total ok=N failed=M" on exit. inflight is the calls issued
// and not yet finished: a report with inflight=0 counts every call made so
// far, which is what lets the demo set the client's counts beside the
// sidecars'.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	shim "github.com/detourmesh/detour/sdk-shim"
)

// Counts are the outcomes of a client's calls. Safe for concurrent use.
type Counts struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	from       string // the server that answered last
	lastErr    string
}

// Succeed counts a call answered by the server from.
func (c *Counts) Succeed(from string) {
	c.ok.Add(1)
	c.mu.Lock()
	c.from = from
	c.mu.Unlock()
}

// Fail counts a failed call and logs its error, once per run of the same
// error.
func (c *Counts) Fail(name string, err error) {
	c.failed.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if msg := err.Error(); msg != c.lastErr {
		c.lastErr = msg
		log.Printf("%s: call failed: %v", name, err)
	}
}

// Follower keeps the newest answer of the agent for a service, and counts
// the changes of mesh mode.
type Follower struct {
	answer   atomic.Pointer[shim.Answer]
	switches atomic.Int64
}

// Follow follows service until ctx ends or c closes.
func Follow(ctx context.Context, c *shim.Client, service string) (*Follower, error) {
	updates, err := c.Watch(ctx, service)
	if err != nil {
		return nil, err
	}
	f := &Follower{}
	go func() {
		for u := range updates {
			if u.Err != nil {
				continue
			}
			a := u.Answer
			if last := f.answer.Swap(&a); last != nil && last.Mesh != a.Mesh {
				f.switches.Add(1)
			}
		}
	}()
	return f, nil
}

// Answer is the newest answer, nil before the first.
func (f *Follower) Answer() *shim.Answer { return f.answer.Load() }

// Switches is how many times the mesh mode has changed.
func (f *Follower) Switches() int64 { return f.switches.Load() }

// errBusy is the reason a tick's call was not made: the issuer had no
// room for it. Without its own line in the log, such a failure would be
// a count with no cause.
var errBusy = errors.New("all busy: the tick's call was not issued")

// Issuer starts the call of tick i without blocking; when it cannot (all
// busy) it returns false and the tick counts as failed. Wait returns when
// every call issued has finished.
type Issuer interface {
	Issue(i int) bool
	Wait()
}

// Run issues rate calls per second until ctx ends, reporting each second
// and on SIGUSR1 to out, then waits for the calls in flight and reports
// the total.
func Run(ctx context.Context, out io.Writer, name string, rate int, n *Counts, f *Follower, iss Issuer) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	every := time.NewTicker(time.Second)
	defer every.Stop()
	now := make(chan os.Signal, 1)
	signal.Notify(now, syscall.SIGUSR1)
	defer signal.Stop(now)
	// issued and busy are this goroutine's: every issued call ends in one
	// Succeed or Fail, a busy tick is a Fail of its own.
	var issued, busy int64
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			iss.Wait()
			report(out, name, n, f, issued, busy)
			fmt.Fprintf(out, "%s: total ok=%d failed=%d\n", name, n.ok.Load(), n.failed.Load())
			return
		case <-every.C:
			report(out, name, n, f, issued, busy)
		case <-now:
			report(out, name, n, f, issued, busy)
		case <-tick.C:
			if iss.Issue(i) {
				issued++
			} else {
				busy++
				n.Fail(name, errBusy) // counted, not queued; logged, as a failed call is
			}
		}
	}
}

// report prints one report line. inflight is worked out from the ok and
// failed it prints, so inflight=0 means they count every call issued.
func report(out io.Writer, name string, n *Counts, f *Follower, issued, busy int64) {
	n.mu.Lock()
	from := n.from
	n.mu.Unlock()
	mesh, via := false, "-"
	if a := f.Answer(); a != nil {
		mesh, via = a.Mesh, strings.Join(a.Endpoints, ",")
	}
	ok, failed := n.ok.Load(), n.failed.Load()
	fmt.Fprintf(out, "%s: ok=%d failed=%d mesh=%t via=%s from=%s inflight=%d\n", name, ok, failed, mesh, via, from, issued-(ok+failed-busy))
}

// Concurrent issues each call in a goroutine of its own, at most limit at
// once.
type Concurrent struct {
	call func(i int)
	sem  chan struct{}
	wg   sync.WaitGroup
}

// NewConcurrent returns an Issuer running call(i) for each tick.
func NewConcurrent(limit int, call func(i int)) *Concurrent {
	return &Concurrent{call: call, sem: make(chan struct{}, limit)}
}

// Issue implements Issuer.
func (c *Concurrent) Issue(i int) bool {
	select {
	case c.sem <- struct{}{}:
	default:
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sem }()
		c.call(i)
	}()
	return true
}

// Wait implements Issuer.
func (c *Concurrent) Wait() { c.wg.Wait() }

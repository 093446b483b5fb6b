package app

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Counts are the outcomes of the consumer's calls. Safe for concurrent use.
type Counts struct {
	ok, failed atomic.Int64
	mu         sync.Mutex // guards from and lastErr
	from       string     // the provider that answered last
	lastErr    string
}

// Succeed counts a call answered by the provider from.
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

// Run calls call rate times a second, each in a goroutine of its own and at
// most limit at once, until ctx ends; it reports each second and on SIGUSR1
// to out, then waits for the calls in flight and reports the total. The
// lines are those of the detour example clients (examples/internal/load),
// which the demo and the integration suite read:
//
//	NAME: ok=N failed=M mesh=false via=- from=PROVIDER inflight=K
//	NAME: total ok=N failed=M
//
// A plain Dubbo app does not know whether the mesh carries its calls, so
// mesh is always false and via always "-"; from is the --name of the
// provider that answered last. A tick that finds limit calls in flight
// counts as failed.
func Run(ctx context.Context, out io.Writer, name string, rate, limit int, n *Counts, call func(ctx context.Context)) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	every := time.NewTicker(time.Second)
	defer every.Stop()
	now := make(chan os.Signal, 1)
	signal.Notify(now, syscall.SIGUSR1)
	defer signal.Stop(now)

	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	// issued and busy are this goroutine's: every issued call ends in one
	// Succeed or Fail, a busy tick is a Fail of its own.
	var issued, busy int64
	report := func() {
		n.mu.Lock()
		from := n.from
		n.mu.Unlock()
		ok, failed := n.ok.Load(), n.failed.Load()
		fmt.Fprintf(out, "%s: ok=%d failed=%d mesh=false via=- from=%s inflight=%d\n", name, ok, failed, from, issued-(ok+failed-busy))
	}
	// Calls run on their own context: the ones in flight when ctx ends
	// finish (or time out) and are counted.
	callCtx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			report()
			fmt.Fprintf(out, "%s: total ok=%d failed=%d\n", name, n.ok.Load(), n.failed.Load())
			return
		case <-every.C:
			report()
		case <-now:
			report()
		case <-tick.C:
			select {
			case sem <- struct{}{}:
			default:
				busy++
				n.failed.Add(1) // all busy: counted, not queued
				continue
			}
			issued++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				call(callCtx)
			}()
		}
	}
}

// OK is the number of calls that succeeded.
func (c *Counts) OK() int64 { return c.ok.Load() }

// Failed is the number of calls that failed.
func (c *Counts) Failed() int64 { return c.failed.Load() }

package shim_test

import (
	"context"
	"sync"
	"testing"
	"time"
)

// load calls call from a few workers, each paced by a ticker, until
// finish, recording every result.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	results [][]result
}

type result struct {
	start, end time.Time
	err        error
}

const workers = 4

func runLoad(call func(ctx context.Context) error) *load {
	l := &load{stop: make(chan struct{}), results: make([][]result, workers)}
	for i := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				start := time.Now()
				err := call(ctx)
				cancel()
				l.mu.Lock()
				l.results[i] = append(l.results[i], result{start, time.Now(), err})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// since counts the calls started after t, and the failures among them.
func (l *load) since(t time.Time) (calls, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rs := range l.results {
		for _, r := range rs {
			if r.start.After(t) {
				calls++
				if r.err != nil {
					failed++
				}
			}
		}
	}
	return calls, failed
}

// waitCalls waits until n calls started after t have completed.
func (l *load) waitCalls(t *testing.T, after time.Time, n int) {
	t.Helper()
	eventually(t, "calls under load", func() bool { c, _ := l.since(after); return c >= n })
}

func (l *load) finish() [][]result {
	close(l.stop)
	l.wg.Wait()
	return l.results
}

// checkKill checks the calls around a sidecar whose kill began at kill
// and had closed every connection at killed. A call may fail only if it
// was in flight during the kill, or if it started after it but before the
// app's transport read the connection's end: then it is the worker's
// first call after the kill (one per worker at most), and every later
// call succeeds.
func checkKill(t *testing.T, res [][]result, kill, killed time.Time) {
	t.Helper()
	total, during, after := 0, 0, 0
	for w, rs := range res {
		seenOK := false
		for _, r := range rs {
			if r.start.After(killed) {
				total++
			}
			switch {
			case r.err == nil:
				if r.start.After(killed) {
					seenOK = true
				}
			case r.end.Before(kill):
				t.Errorf("worker %d: a call failed before the kill: %v", w, r.err)
			case !r.start.After(killed):
				during++
				t.Logf("worker %d: call in flight during the kill failed: %v", w, r.err)
			case seenOK:
				t.Errorf("worker %d: call started %v after the kill failed after the switch: %v", w, r.start.Sub(killed), r.err)
			default:
				after++
				t.Logf("worker %d: call started %v after the kill, sent before the transport saw the close: %v", w, r.start.Sub(killed), r.err)
			}
		}
	}
	if after > workers {
		t.Errorf("%d calls started after the kill failed, want at most one per worker (%d)", after, workers)
	}
	t.Logf("after the kill (which took %v): %d calls; failed: %d in flight during the kill, %d sent just after it",
		killed.Sub(kill), total, during, after)
}

// killUnderLoad kills the stand-in sidecar's data plane while call runs
// under load and checks the calls around the kill. With agentNotices the
// agent is told at once too (its push then races the client's own
// switch); without, the agent keeps answering mesh, and only the client's
// own switch can save the calls.
func killUnderLoad(t *testing.T, e *env, svc string, agentNotices bool, call func(ctx context.Context) error) {
	t.Helper()
	l := runLoad(call)
	l.waitCalls(t, time.Time{}, 100)
	kill := time.Now()
	e.sidecar.kill()
	killed := time.Now()
	if agentNotices {
		e.sidecarDown(svc)
	}
	l.waitCalls(t, killed, 400)
	checkKill(t, l.finish(), kill, killed)
	if ans, _ := e.a.Resolve(context.Background(), svc); ans.Mesh == agentNotices {
		t.Fatalf("the agent's answer after the kill: mesh %v", ans.Mesh)
	}
}

package zookeeper

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestManySessions: 10,000 sessions open and close (most with
// closeSession, some by dropping the connection and expiring); the
// server's goroutines and heap come back to where they were, its tables
// are empty, and a session that watched all along saw nothing.
func TestManySessions(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 sessions: not in -short")
	}
	const sessions, workers = 10000, 8
	clock := newFakeClock()
	cfg := testConfig()
	cfg.MaxClientConns = 0
	// Warnings only: the test's log buffer would hold a line per session.
	s := startServer(t, cfg, WithClock(clock.Now), WithLogger(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))))
	bystander := dialRawTimeout(t, s.addr, 0, nil, 60000) // outlives the clock's jump below
	bystander.call(opCreate, createBody("/quiet", nil, 0))
	bystander.call(opGetChildren, pathWatchBody("/quiet", true))

	baseGoroutines, baseHeap := settle()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < sessions; i += workers {
				if err := oneSession(t, s.addr, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second) // the dropped ones (10s) expire
	var state string
	defer func() {
		if t.Failed() {
			t.Log(state)
		}
	}()
	registrytest.Eventually(t, 2*wait, "every session and connection gone", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		state = fmt.Sprintf("sessions %d, connections %d, sessions with ephemerals %d, data watches %d, child watches %d",
			len(s.sessions), len(s.conns), len(s.tree.ephemerals), len(s.watches.data.paths), len(s.watches.child.paths))
		return len(s.sessions) == 1 && len(s.conns) == 1 && len(s.tree.ephemerals) == 0 &&
			len(s.watches.data.paths) == 0 && len(s.watches.child.paths) == 1
	})
	s.mu.Lock()
	nodes := len(s.tree.nodes)
	s.mu.Unlock()
	if nodes != 5 { // the 4 of a fresh tree and /quiet
		t.Errorf("%d nodes left", nodes)
	}
	var goroutines int
	var heap uint64
	registrytest.Eventually(t, 2*wait, "goroutines back to where they were", func() bool {
		goroutines, heap = settle()
		return goroutines <= baseGoroutines
	})
	t.Logf("goroutines %d -> %d, heap %d KiB -> %d KiB", baseGoroutines, goroutines, baseHeap>>10, heap>>10)
	if heap > baseHeap+4<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", baseHeap>>10, heap>>10)
	}
	if h, _, ok := bystander.call(opSync, pathBody("/")); !ok || h.err != codeOK || len(bystander.events) != 0 {
		t.Fatalf("bystander: %v %v, events %v", h.err, ok, bystander.events)
	}
}

// oneSession connects, makes an ephemeral node with a watch on it, and
// ends: with closeSession, or (one in ten) by dropping the connection.
// It holds nothing of the test's after it returns, so the heap measured
// is the server's.
func oneSession(t *testing.T, addr string, i int) error {
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	c := &rawClient{t: t, nc: nc, br: bufio.NewReaderSize(nc, 64)}
	w := newWriter()
	w.int32(0)
	w.int64(0)
	w.int32(10000)
	w.int64(0)
	w.buffer(make([]byte, 16))
	if _, err := nc.Write(w.frame()); err != nil {
		return err
	}
	if c.readFrame() == nil {
		return fmt.Errorf("session %d: no connect response", i)
	}
	p := fmt.Sprintf("/s%d", i)
	if h, _, ok := c.call(opCreate, createBody(p, nil, modeEphemeral)); !ok || h.err != codeOK {
		return fmt.Errorf("session %d: create: %v %v", i, h.err, ok)
	}
	if h, _, ok := c.call(opGetData, pathWatchBody(p, true)); !ok || h.err != codeOK {
		return fmt.Errorf("session %d: getData: %v %v", i, h.err, ok)
	}
	if i%10 == 0 {
		return nil
	}
	if h, _, ok := c.call(opCloseSession, nil); !ok || h.err != codeOK {
		return fmt.Errorf("session %d: close: %v %v", i, h.err, ok)
	}
	return nil
}

// settle collects garbage and returns the goroutine count and live heap.
func settle() (int, uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

package load

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// held is an Issuer whose calls end only when released, all succeeding.
type held struct {
	n       *Counts
	mu      sync.Mutex
	pending int
	release chan struct{}
	wg      sync.WaitGroup
}

func (h *held) Issue(int) bool {
	h.mu.Lock()
	h.pending++
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		<-h.release
		h.n.Succeed("server")
	}()
	return true
}

func (h *held) Wait() { h.wg.Wait() }

var line = regexp.MustCompile(`^test-client: ok=(\d+) failed=(\d+) mesh=false via=- from=(\S*) inflight=(\d+)$`)

// TestReportOnSignal: SIGUSR1 gets a report at once; inflight counts the
// calls issued and not ended, and is 0 in the last report, after Wait.
func TestReportOnSignal(t *testing.T) {
	// Caught here too, so a signal sent before Run listens does not end
	// the test binary; a report then comes on the second anyway.
	early := make(chan os.Signal, 10)
	signal.Notify(early, syscall.SIGUSR1)
	defer signal.Stop(early)
	var n Counts
	h := &held{n: &n, release: make(chan struct{})}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, pw, "test-client", 1000, &n, &Follower{}, h)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	next := func() []string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("no more lines: %v", lines.Err())
		}
		return line.FindStringSubmatch(lines.Text())
	}
	// Reports come at once on the signal; wait for one that shows calls.
	for {
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		m := next()
		if m == nil {
			t.Fatalf("report %q", lines.Text())
		}
		if inflight, _ := strconv.Atoi(m[4]); inflight > 0 {
			if m[1] != "0" || m[2] != "0" {
				t.Fatalf("calls held, yet %q", lines.Text())
			}
			break
		}
	}
	cancel()
	close(h.release)
	m := next()
	if m == nil || m[4] != "0" || m[2] != "0" {
		t.Fatalf("last report %q, want inflight=0", lines.Text())
	}
	h.mu.Lock()
	issued := h.pending
	h.mu.Unlock()
	if ok, _ := strconv.Atoi(m[1]); ok != issued {
		t.Fatalf("last report ok=%s, %d calls issued", m[1], issued)
	}
	if !lines.Scan() || lines.Text() != "test-client: total ok="+m[1]+" failed=0" {
		t.Fatalf("total %q", lines.Text())
	}
	<-done
}

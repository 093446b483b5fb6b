package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// dubbogoBuild holds the real dubbo-go apps (integration/dubbogo), built
// once per run of this test binary.
var dubbogoBuild struct {
	once sync.Once
	dir  string
	out  []byte
	err  error
}

// dubbogoBin builds dubbo-provider and dubbo-consumer with
// scripts/dubbogo.sh into the repository's bin/dubbogo, the folder
// `scripts/dubbogo.sh test` uses: its stamp skips an unchanged build
// (0 s) and its lock queues concurrent ones; a changed source relinks
// from the warm build cache in seconds, a cold machine compiles all of
// dubbo-go (a minute or more).
func dubbogoBin(t *testing.T) string {
	t.Helper()
	b := &dubbogoBuild
	b.once.Do(func() {
		root, err := filepath.Abs("..") // go test runs in integration/
		if err != nil {
			b.err = err
			return
		}
		b.dir = filepath.Join(root, "bin", "dubbogo")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "dubbogo.sh"), "build", b.dir)
		cmd.Dir = root
		b.out, b.err = cmd.CombinedOutput()
		if b.err == nil {
			t.Logf("%s", bytes.TrimSpace(b.out))
		}
	})
	if b.err != nil {
		t.Fatalf("scripts/dubbogo.sh build %s: %v\n%s", b.dir, b.err, b.out)
	}
	return b.dir
}

// dubboConsumer is a running dubbo-consumer; its counts are read from
// the report lines it prints once a second and at once on SIGUSR1.
type dubboConsumer struct {
	*testbed.Proc
	rate int
}

// reportMark starts every report line (testbed.LastReport's format).
var reportMark = []byte("dubbo-client: ok=")

func (c *dubboConsumer) lines(t *testing.T) int {
	t.Helper()
	out, err := os.ReadFile(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(out, reportMark)
}

// snapshot asks for a report (SIGUSR1) and returns the first one printed
// after the ask: the counts at a moment after snapshot was called. The
// consumer must have reported once already (its SIGUSR1 handler set).
func (c *dubboConsumer) snapshot(t *testing.T) testbed.Report {
	t.Helper()
	n := c.lines(t)
	if n == 0 {
		t.Fatal("snapshot of a dubbo-consumer that has not reported yet")
	}
	c.Signal(syscall.SIGUSR1)
	eventually(t, 10*time.Second, "dubbo-consumer reports", func() bool { return c.lines(t) > n })
	return lastReport(t, c.Proc)
}

// waitOK waits until the consumer has made ok successful calls in all,
// asking for a report at each look once it reports (SIGUSR1 before its
// handler is set would end it), and returns that report.
func (c *dubboConsumer) waitOK(t *testing.T, ok int, what string) testbed.Report {
	t.Helper()
	var r testbed.Report
	eventually(t, 30*time.Second, what, func() bool {
		if c.lines(t) > 0 {
			c.Signal(syscall.SIGUSR1)
		}
		r = lastReport(t, c.Proc)
		return r.OK >= ok
	})
	return r
}

// panicMark starts the consumer's log line for a call in which dubbo-go
// v3.3.1 panicked with its known race (an invoker the registry's update
// destroyed, its URL nil, under a call that had picked it; see
// integration/dubbogo/internal/app.PanicMark): that call is counted
// failed and the consumer goes on. Any other panic still ends it.
var panicMark = []byte("recovered dubbo-go v3.3.1 panic in a call")

// stop ends the consumer (SIGTERM: it finishes the calls in flight and
// prints its total) and returns the total. It logs, as a figure, how
// many of the failed calls were dubbo-go's known panic.
func (c *dubboConsumer) stop(t *testing.T) testbed.Report {
	t.Helper()
	if err := c.Stop(15 * time.Second); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) { // it exits 1 when a call failed
			t.Fatalf("dubbo-consumer: %v", err)
		}
	}
	r := lastReport(t, c.Proc)
	if !r.Final {
		t.Fatal("no total line in dubbo-consumer's output")
	}
	if out, err := os.ReadFile(c.Log); err == nil {
		t.Logf("figure: dubbo-go v3.3.1's known panic recovered in %d of the consumer's calls (each counted failed)", bytes.Count(out, panicMark))
		for _, line := range bytes.Split(out, []byte("\n")) {
			if bytes.Contains(line, panicMark) {
				t.Logf("  %s", line) // its frames
			}
		}
	}
	return r
}

package nacos

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests. The SDK's gRPC
// client stops its goroutines when the Registry closes, but some only
// notice at their next wake-up (a reconnect loop sleeps up to 5 s between
// attempts), so the check polls for a while before failing. No goroutine
// is ignored.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := noLeaks(15 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func noLeaks(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-time.After(100 * time.Millisecond)
	}
}

package dubbogo

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind (the spy's
// pipes, the apps' waiters, the ZooKeeper session of the dump).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package procstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestOwnProcess(t *testing.T) {
	pid := os.Getpid()
	rss, err := RSS([]int{pid})
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS = %d, %v; want over 1 MiB", rss, err)
	}
	// Burn some CPU so the tick counter must move.
	before, err := CPU([]int{pid})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	after, _ := CPU([]int{pid})
	if after <= before {
		t.Fatalf("CPU did not move: %v → %v", before, after)
	}
}

func TestTreeFindsChild(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for _, p := range Tree(os.Getpid()) {
		if p == cmd.Process.Pid {
			return
		}
	}
	t.Fatalf("child %d not in tree of %d", cmd.Process.Pid, os.Getpid())
}

func TestMissingProcess(t *testing.T) {
	if _, err := RSS([]int{1 << 30}); err == nil {
		t.Fatal("RSS of a missing pid: no error")
	}
}

package health

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Config paces one target's checks.
type Config struct {
	Interval           time.Duration `yaml:"interval"`
	Timeout            time.Duration `yaml:"timeout"`
	UnhealthyThreshold int           `yaml:"unhealthy_threshold"`
	HealthyThreshold   int           `yaml:"healthy_threshold"`
}

// Default is the agent's default pacing.
func Default() Config {
	return Config{Interval: time.Second, Timeout: 500 * time.Millisecond, UnhealthyThreshold: 3, HealthyThreshold: 2}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Interval <= 0:
		return fmt.Errorf("health_check.interval: must be > 0")
	case c.Timeout <= 0:
		return fmt.Errorf("health_check.timeout: must be > 0")
	case c.UnhealthyThreshold < 1:
		return fmt.Errorf("health_check.unhealthy_threshold: must be >= 1")
	case c.HealthyThreshold < 1:
		return fmt.Errorf("health_check.healthy_threshold: must be >= 1")
	}
	return nil
}

// Result is one check's outcome: a state (the caller's own enumeration)
// and whether it counts as good, with a reason when it is not.
type Result struct {
	State  int
	Good   bool
	Reason string
}

// Target is one thing to check.
type Target struct {
	// Key identifies the target; a target with the same Key and Config
	// keeps running across Set calls.
	Key    string
	Config Config
	// Probe runs one check within ctx's deadline.
	Probe func(ctx context.Context) Result
	// OnChange is called, from the target's goroutine, with each adopted
	// result: the first one at once, then a new state only after it was
	// seen HealthyThreshold (good) or UnhealthyThreshold (bad) times in
	// a row.
	OnChange func(Result)
}

// Monitor runs a goroutine per target.
type Monitor struct {
	mu      sync.Mutex
	running map[string]*run
	wg      sync.WaitGroup
}

type run struct {
	cfg    Config
	cancel context.CancelFunc
}

// NewMonitor returns a monitor with no targets.
func NewMonitor() *Monitor { return &Monitor{running: map[string]*run{}} }

// Set makes ts the targets: new ones start (checked at once), removed
// ones stop, unchanged ones go on.
func (m *Monitor) Set(ts []Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := make(map[string]bool, len(ts))
	for _, t := range ts {
		want[t.Key] = true
		if r, ok := m.running[t.Key]; ok {
			if r.cfg == t.Config {
				continue
			}
			r.cancel()
		}
		ctx, cancel := context.WithCancel(context.Background())
		m.running[t.Key] = &run{cfg: t.Config, cancel: cancel}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			loop(ctx, t)
		}()
	}
	for k, r := range m.running {
		if !want[k] {
			r.cancel()
			delete(m.running, k)
		}
	}
}

// Close stops every target and waits for them.
func (m *Monitor) Close() {
	m.Set(nil)
	m.wg.Wait()
}

func loop(ctx context.Context, t Target) {
	tick := time.NewTicker(t.Config.Interval)
	defer tick.Stop()
	var (
		adopted *Result
		streak  int
		pending int
	)
	for {
		cctx, cancel := context.WithTimeout(ctx, t.Config.Timeout)
		r := t.Probe(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case adopted == nil:
			adopted = &r
			t.OnChange(r)
		case r.State == adopted.State:
			streak = 0
			if r.Reason != adopted.Reason && !r.Good {
				adopted.Reason = r.Reason
			}
		default:
			if r.State != pending {
				pending, streak = r.State, 0
			}
			streak++
			need := t.Config.UnhealthyThreshold
			if r.Good {
				need = t.Config.HealthyThreshold
			}
			if streak >= need {
				adopted, streak = &r, 0
				t.OnChange(r)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

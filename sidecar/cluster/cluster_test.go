package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/stats"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newCluster(t *testing.T, p Policy, weights ...uint32) (*Cluster, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1000, 0)}
	cfg := Config{Policy: p, PanicThreshold: 50, Outlier: outlier.Default()}
	cfg.Outlier.MaxEjectionPercent = 100
	c := New("svc", cfg, clk.now)
	var specs []Spec
	for i, w := range weights {
		specs = append(specs, Spec{Addr: "10.0.0." + string(rune('1'+i)) + ":1", Weight: w})
	}
	c.Update(cfg, specs)
	for _, e := range c.Endpoints() {
		c.SetHealth(e, Healthy)
	}
	return c, clk
}

func counts(t *testing.T, c *Cluster, n int) map[string]int {
	t.Helper()
	m := map[string]int{}
	for range n {
		e, err := c.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		m[e.Addr]++
	}
	return m
}

func TestWeightsHonoured(t *testing.T) {
	for _, p := range []Policy{LeastRequest, RoundRobin} {
		c, _ := newCluster(t, p, 100, 300)
		m := counts(t, c, 40000)
		eps := c.Endpoints()
		ratio := float64(m[eps[1].Addr]) / float64(m[eps[0].Addr])
		if ratio < 2.7 || ratio > 3.3 {
			t.Errorf("%s: weight 300 vs 100 got ratio %.2f (%v)", p, ratio, m)
		}
	}
}

func TestRoundRobinInterleavesEqualWeights(t *testing.T) {
	c, _ := newCluster(t, RoundRobin, 100, 100, 100)
	var prev *Endpoint
	for range 9 {
		e, _ := c.Pick(nil)
		if e == prev {
			t.Fatal("round robin picked the same endpoint twice in a row")
		}
		prev = e
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	c, _ := newCluster(t, LeastRequest, 1, 1)
	busy := c.Endpoints()[0]
	for range 10 {
		busy.Begin()
	}
	m := counts(t, c, 1000)
	// With two choices, the busy one wins only when drawn twice: ~25%.
	if m[busy.Addr] > 350 {
		t.Fatalf("busy endpoint picked %d/1000", m[busy.Addr])
	}
}

func TestUnhealthyAndEjectedNotPicked(t *testing.T) {
	c, clk := newCluster(t, LeastRequest, 1, 1, 1, 1)
	eps := c.Endpoints()
	c.SetHealth(eps[0], AppDown)
	for range 5 {
		c.Failure(eps[1], stats.ConnectRefused)
	}
	if !eps[1].Outlier.Ejected() {
		t.Fatal("not ejected")
	}
	m := counts(t, c, 200)
	if m[eps[0].Addr] != 0 || m[eps[1].Addr] != 0 {
		t.Fatalf("picked an unhealthy or ejected endpoint: %v", m)
	}
	clk.t = clk.t.Add(31 * time.Second)
	if m := counts(t, c, 200); m[eps[1].Addr] == 0 {
		t.Fatal("ejection did not end")
	}
}

func TestPanicThreshold(t *testing.T) {
	c, _ := newCluster(t, LeastRequest, 1, 1, 1, 1)
	eps := c.Endpoints()
	c.SetHealth(eps[0], SidecarDown)
	c.SetHealth(eps[1], SidecarDown)
	if c.Panicking() {
		t.Fatal("50% healthy is not below a 50% threshold")
	}
	c.SetHealth(eps[2], AppDown)
	if !c.Panicking() {
		t.Fatal("25% healthy must panic")
	}
	if m := counts(t, c, 400); len(m) != 4 {
		t.Fatalf("panic must route to all: %v", m)
	}
}

func TestRecoveryEndsEjection(t *testing.T) {
	c, _ := newCluster(t, LeastRequest, 1, 1)
	e := c.Endpoints()[0]
	for range 5 {
		c.Failure(e, stats.FirstByteTimeout)
	}
	// A check that keeps passing is no news: the ejection holds.
	c.SetHealth(e, Healthy)
	if !e.Outlier.Ejected() {
		t.Fatal("a steady passing check must not end an ejection")
	}
	c.SetHealth(e, AppDown)
	c.SetHealth(e, Healthy)
	if e.Outlier.Ejected() {
		t.Fatal("down then up must end the ejection")
	}
}

func TestPickExcludes(t *testing.T) {
	c, _ := newCluster(t, LeastRequest, 1, 1)
	first, _ := c.Pick(nil)
	for range 50 {
		if e, _ := c.Pick(first); e == first {
			t.Fatal("retry got the same endpoint")
		}
	}
	one, _ := newCluster(t, LeastRequest, 1)
	e, _ := one.Pick(nil)
	if _, err := one.Pick(e); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("single endpoint excluded: %v", err)
	}
}

func TestUpdateKeepsState(t *testing.T) {
	c, _ := newCluster(t, LeastRequest, 1, 1)
	e := c.Endpoints()[0]
	e.Stats.Requests.Add(7)
	cfg := Config{Policy: LeastRequest, PanicThreshold: 50, Outlier: outlier.Default()}
	c.Update(cfg, []Spec{e.Spec, {Addr: "10.9.9.9:1", Weight: 1}})
	if got := c.Endpoints()[0]; got != e || got.Health() != Healthy {
		t.Fatal("an unchanged endpoint lost its state")
	}
}

func BenchmarkPick(b *testing.B) {
	for _, p := range []Policy{LeastRequest, RoundRobin} {
		b.Run(string(p), func(b *testing.B) {
			clk := &clock{t: time.Unix(1, 0)}
			cfg := Config{Policy: p, PanicThreshold: 50, Outlier: outlier.Default()}
			c := New("svc", cfg, clk.now)
			var specs []Spec
			for i := range 16 {
				specs = append(specs, Spec{Addr: string(rune('a' + i)), Weight: 100})
			}
			c.Update(cfg, specs)
			for _, e := range c.Endpoints() {
				c.SetHealth(e, Healthy)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e, _ := c.Pick(nil)
					e.Begin()
					c.Success(e)
					e.End()
				}
			})
		})
	}
}

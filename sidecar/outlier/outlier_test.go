package outlier

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func hosts(n int) []*Host {
	hs := make([]*Host, n)
	for i := range hs {
		hs[i] = &Host{}
	}
	return hs
}

func TestConsecutiveFailuresEject(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	d := NewDetector(Default(), clk.now)
	hs := hosts(10)
	d.SetTotal(len(hs))
	h := hs[0]
	for i := range 4 {
		if d.Failure(h) {
			t.Fatalf("ejected after %d failures", i+1)
		}
	}
	d.Success(h)
	for range 4 {
		d.Failure(h)
	}
	if h.Ejected() {
		t.Fatal("a success must reset the run of failures")
	}
	if !d.Failure(h) || !h.Ejected() {
		t.Fatal("5 consecutive failures must eject")
	}
	clk.t = clk.t.Add(29 * time.Second)
	if changed, next := d.Sweep(hs); changed || !next.Equal(time.Unix(1030, 0)) {
		t.Fatalf("sweep before the end: changed=%v next=%v", changed, next)
	}
	clk.t = clk.t.Add(time.Second)
	if changed, _ := d.Sweep(hs); !changed || h.Ejected() {
		t.Fatal("ejection must end after base_ejection_time")
	}
	// Second ejection right away: 2 × base.
	for range 5 {
		d.Failure(h)
	}
	if h.until.Sub(clk.t) != 60*time.Second {
		t.Fatalf("second ejection lasts %v, want 60s", h.until.Sub(clk.t))
	}
	if h.Ejections() != 2 {
		t.Fatalf("ejections = %d", h.Ejections())
	}
}

func TestEjectionCappedAndDecays(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	cfg := Default()
	d := NewDetector(cfg, clk.now)
	hs := hosts(1)
	d.SetTotal(1)
	h := hs[0]
	for i := range 12 {
		for range 5 {
			d.Failure(h)
		}
		want := min(time.Duration(i+1)*cfg.BaseEjectionTime, cfg.MaxEjectionTime)
		if got := h.until.Sub(clk.t); got != want {
			t.Fatalf("ejection %d lasts %v, want %v", i+1, got, want)
		}
		clk.t = h.until
		d.Sweep(hs)
	}
	// A long time in service decays the multiplier to zero.
	clk.t = clk.t.Add(time.Hour)
	for range 5 {
		d.Failure(h)
	}
	if got := h.until.Sub(clk.t); got != cfg.BaseEjectionTime {
		t.Fatalf("after decay the ejection lasts %v", got)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	for _, tc := range []struct {
		total, percent, want int
	}{
		{total: 3, percent: 10, want: 1}, // one can always be ejected
		{total: 10, percent: 10, want: 1},
		{total: 10, percent: 30, want: 3},
		{total: 4, percent: 100, want: 4},
		{total: 4, percent: 0, want: 0},
	} {
		cfg := Default()
		cfg.MaxEjectionPercent = tc.percent
		d := NewDetector(cfg, (&fakeClock{t: time.Unix(1, 0)}).now)
		hs := hosts(tc.total)
		d.SetTotal(tc.total)
		n := 0
		for _, h := range hs {
			for range 5 {
				d.Failure(h)
			}
			if h.Ejected() {
				n++
			}
		}
		if n != tc.want {
			t.Errorf("total %d, %d%%: %d ejected, want %d", tc.total, tc.percent, n, tc.want)
		}
	}
}

func TestUnejectAndRemove(t *testing.T) {
	d := NewDetector(Default(), (&fakeClock{t: time.Unix(1, 0)}).now)
	hs := hosts(1)
	d.SetTotal(1)
	for range 5 {
		d.Failure(hs[0])
	}
	if !d.Uneject(hs[0]) || hs[0].Ejected() || d.Uneject(hs[0]) {
		t.Fatal("Uneject")
	}
	for range 5 {
		d.Failure(hs[0])
	}
	d.Remove(hs[0])
	if d.ejected != 0 {
		t.Fatalf("ejected count %d after Remove", d.ejected)
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Default()
	bad.MaxEjectionTime = time.Second
	if err := bad.Validate(); err == nil {
		t.Fatal("max < base accepted")
	}
}

// Package outlier is passive outlier detection for one cluster: every
// request or connection outcome is reported per endpoint, and
// ConsecutiveFailures failures in a row eject the endpoint for
// BaseEjectionTime × times ejected, at most MaxEjectionTime, while at most
// MaxEjectionPercent of the cluster is ejected at once.
//
// The times-ejected multiplier decays by one for every Interval the
// endpoint spends back in service, as in Envoy. Unejection is lazy: Sweep,
// called by the cluster when it rebuilds its picking set, returns the
// endpoints whose time is up and the next time one will be.
//
// A Detector is safe for concurrent use. Success on the hot path is one
// atomic load when nothing failed before.
package outlier

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Config is outlier detection's settings (the snapshot's Outlier, plus
// Interval, which the sidecar's own config sets).
type Config struct {
	ConsecutiveFailures int           `yaml:"consecutive_failures"`
	BaseEjectionTime    time.Duration `yaml:"base_ejection_time"`
	MaxEjectionTime     time.Duration `yaml:"max_ejection_time"`
	MaxEjectionPercent  int           `yaml:"max_ejection_percent"`
	Interval            time.Duration `yaml:"interval"`
}

// Default is Envoy's defaults.
func Default() Config {
	return Config{
		ConsecutiveFailures: 5,
		BaseEjectionTime:    30 * time.Second,
		MaxEjectionTime:     300 * time.Second,
		MaxEjectionPercent:  10,
		Interval:            10 * time.Second,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.ConsecutiveFailures < 0:
		return fmt.Errorf("outlier.consecutive_failures: must be >= 0 (0 turns ejection off)")
	case c.BaseEjectionTime <= 0:
		return fmt.Errorf("outlier.base_ejection_time: must be > 0")
	case c.MaxEjectionTime < c.BaseEjectionTime:
		return fmt.Errorf("outlier.max_ejection_time: must be >= base_ejection_time")
	case c.MaxEjectionPercent < 0 || c.MaxEjectionPercent > 100:
		return fmt.Errorf("outlier.max_ejection_percent: must be 0-100")
	case c.Interval <= 0:
		return fmt.Errorf("outlier.interval: must be > 0")
	}
	return nil
}

// Host is one endpoint's outlier state; the cluster embeds one per
// endpoint. The zero value is an endpoint in service.
type Host struct {
	consecutive atomic.Int32
	ejected     atomic.Bool
	ejections   atomic.Uint64

	// under Detector.mu
	until       time.Time
	times       int
	lastUneject time.Time
}

// Ejected says whether h is out of service now.
func (h *Host) Ejected() bool { return h.ejected.Load() }

// Ejections is how often h was ejected.
func (h *Host) Ejections() uint64 { return h.ejections.Load() }

// Detector decides ejections for one cluster.
type Detector struct {
	mu      sync.Mutex
	cfg     Config
	total   int
	ejected int
	now     func() time.Time
}

// NewDetector returns a detector; now is the clock.
func NewDetector(cfg Config, now func() time.Time) *Detector {
	return &Detector{cfg: cfg, now: now}
}

// SetConfig replaces the settings (a new snapshot); ejections in force
// keep their end time.
func (d *Detector) SetConfig(cfg Config) {
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
}

// SetTotal sets the cluster's size, for MaxEjectionPercent.
func (d *Detector) SetTotal(n int) {
	d.mu.Lock()
	d.total = n
	d.mu.Unlock()
}

// Success resets h's run of failures.
func (d *Detector) Success(h *Host) {
	if h.consecutive.Load() != 0 {
		h.consecutive.Store(0)
	}
}

// Failure counts one failure of h and reports whether it ejected h now.
func (d *Detector) Failure(h *Host) bool {
	n := h.consecutive.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.ConsecutiveFailures <= 0 || int(n) < d.cfg.ConsecutiveFailures || h.ejected.Load() {
		return false
	}
	// Envoy's rule: eject while the share already ejected is below the
	// cap, so one endpoint can always be ejected.
	if d.total == 0 || d.ejected*100 >= d.cfg.MaxEjectionPercent*d.total {
		return false
	}
	now := d.now()
	if h.times > 0 && !h.lastUneject.IsZero() {
		decay := int(now.Sub(h.lastUneject) / d.cfg.Interval)
		h.times = max(0, h.times-decay)
	}
	h.times++
	dur := time.Duration(h.times) * d.cfg.BaseEjectionTime
	if dur > d.cfg.MaxEjectionTime || dur <= 0 {
		dur = d.cfg.MaxEjectionTime
	}
	h.until = now.Add(dur)
	h.ejected.Store(true)
	h.ejections.Add(1)
	h.consecutive.Store(0)
	d.ejected++
	return true
}

// Sweep returns the hosts of hs whose ejection is over to service and
// reports whether any changed and when the next ejection among them ends
// (zero: none ejected).
func (d *Detector) Sweep(hs []*Host) (changed bool, next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for _, h := range hs {
		if !h.ejected.Load() {
			continue
		}
		if !now.Before(h.until) {
			d.unejectLocked(h, now)
			changed = true
			continue
		}
		if next.IsZero() || h.until.Before(next) {
			next = h.until
		}
	}
	return changed, next
}

// Uneject returns h to service early (an active check saw it recover)
// and reports whether it was ejected.
func (d *Detector) Uneject(h *Host) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !h.ejected.Load() {
		return false
	}
	d.unejectLocked(h, d.now())
	return true
}

// Remove forgets h (its endpoint left the cluster).
func (d *Detector) Remove(h *Host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.ejected.Load() {
		h.ejected.Store(false)
		d.ejected--
	}
}

func (d *Detector) unejectLocked(h *Host, now time.Time) {
	h.ejected.Store(false)
	h.consecutive.Store(0)
	h.lastUneject = now
	d.ejected--
}

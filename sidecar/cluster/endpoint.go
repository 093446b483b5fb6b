package cluster

import (
	"sync/atomic"

	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/stats"
)

// Health is an endpoint's stage-2 state.
type Health int32

// Health states; Healthy and Bypass are routable.
const (
	Unknown     Health = iota // not checked yet
	Healthy                   // remote sidecar says 200
	AppDown                   // remote sidecar says 503
	SidecarDown               // remote sidecar does not answer, nor the app
	Bypass                    // remote sidecar does not answer, the app does: send to AppAddr
)

var healthNames = [...]string{"unknown", "healthy", "app_down", "sidecar_down", "bypass"}

func (h Health) String() string {
	if int(h) < len(healthNames) {
		return healthNames[h]
	}
	return "invalid"
}

// Routable says whether active checking lets traffic go to the endpoint.
func (h Health) Routable() bool { return h == Healthy || h == Bypass }

// Spec is an endpoint as the snapshot describes it.
type Spec struct {
	Addr       string
	AppAddr    string
	Weight     uint32
	HealthPort uint32
	Mesh       bool
	// Labels is the registry metadata as LabelString writes it, so that
	// Spec stays comparable; Meta is the map.
	Labels string
}

// Endpoint is one remote instance with its live state. Its address
// fields never change; a snapshot that changes them makes a new Endpoint.
type Endpoint struct {
	Spec
	// Meta is the instance's registry metadata (read only).
	Meta    map[string]string
	Outlier outlier.Host
	Stats   stats.Counters
	// Bypassed counts connections and requests sent to AppAddr.
	Bypassed atomic.Uint64

	active atomic.Int64
	health atomic.Int32
}

// Health is the endpoint's last stage-2 verdict.
func (e *Endpoint) Health() Health { return Health(e.health.Load()) }

// DialAddr is where to connect now: AppAddr while bypassing, else Addr.
func (e *Endpoint) DialAddr() string {
	if e.Health() == Bypass {
		return e.AppAddr
	}
	return e.Addr
}

// Begin marks one request or connection in flight (least-request
// balancing reads it); End undoes it.
func (e *Endpoint) Begin() {
	e.active.Add(1)
	if e.Health() == Bypass {
		e.Bypassed.Add(1)
	}
}

// End marks the end of what Begin started.
func (e *Endpoint) End() { e.active.Add(-1) }

// Active is the number in flight.
func (e *Endpoint) Active() int64 { return e.active.Load() }

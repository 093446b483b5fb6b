package listener

import (
	"sync/atomic"

	"github.com/detourmesh/detour/sidecar/stats"
)

// atomicHandler holds a listener's current handler and counters; the
// accept loop reads them for every connection, Apply swaps them.
type atomicHandler struct{ v atomic.Pointer[handlerBox] }

type handlerBox struct {
	h   Handler
	c   *stats.Counters // nil: not counted
	max int64           // Spec.MaxConns
}

func (a *atomicHandler) load() Handler        { return a.v.Load().h }
func (a *atomicHandler) loadBox() *handlerBox { return a.v.Load() }
func (a *atomicHandler) store(h Handler, c *stats.Counters, max int64) {
	a.v.Store(&handlerBox{h: h, c: c, max: max})
}

package listener

import "sync/atomic"

// atomicHandler holds a listener's current handler; the accept loop reads
// it for every connection, Apply swaps it.
type atomicHandler struct{ v atomic.Pointer[handlerBox] }

type handlerBox struct{ h Handler }

func (a *atomicHandler) load() Handler   { return a.v.Load().h }
func (a *atomicHandler) store(h Handler) { a.v.Store(&handlerBox{h: h}) }

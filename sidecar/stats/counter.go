package stats

import (
	"sync/atomic"
	"unsafe"
)

// Counter is a counter that every core adds to at once (a listener's
// requests and bytes: several adds per request). One atomic word would
// move its cache line from core to core on each add; Counter spreads its
// adds over shards on lines of their own, picked by the adding
// goroutine's stack, so cores seldom meet, and Load sums them. Add and
// Load are atomic.Uint64's (Add returns nothing: no one total is at hand).
type Counter struct {
	shards [counterShards]struct {
		n atomic.Uint64
		_ [cacheLine - 8]byte
	}
}

const (
	counterShards = 8
	cacheLine     = 64
)

// Add adds n.
func (c *Counter) Add(n uint64) {
	c.shards[shard()].n.Add(n)
}

// shard picks a shard for the calling goroutine from where its stack
// is: goroutines running at once on different cores have different
// stacks, so mostly different shards, at no cost (a random pick cost as
// much as the add). A stack that moves only changes the pick.
func shard() uintptr {
	var b byte
	p := uintptr(unsafe.Pointer(&b)) >> 11 // a stack is 2 KiB or more
	return (p ^ p>>3 ^ p>>6) % counterShards
}

// Load returns the total: exact once the adds it races with are done.
func (c *Counter) Load() uint64 {
	var t uint64
	for i := range c.shards {
		t += c.shards[i].n.Load()
	}
	return t
}

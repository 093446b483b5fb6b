package l7

import (
	"context"
	"net"
	"testing"
	"time"
)

// An idle connection put back by one shard is found by a request of
// another before anything is dialled; after close, nothing is kept.
func TestPoolSharesAcrossShards(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	dials := 0
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	p := newConnPool(dial, time.Second, time.Minute, 256)
	addr := l.Addr().String()
	c, err := p.get(addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.put(addr, c)
	c2, err := p.get(addr, 5)
	if err != nil || c2 != c || dials != 1 {
		t.Fatalf("shard 5 got %p (put %p), %v, %d dials: want the idle one", c2, c, err, dials)
	}
	if c2.shard != 5 {
		t.Fatalf("shard %d: it goes back to the taker's, 5", c2.shard)
	}
	p.put(addr, c2)
	p.close()
	c3, err := p.get(addr, 5)
	if err != nil || c3 == c || dials != 2 {
		t.Fatalf("after close: %p, %v, %d dials: the idle one must be closed", c3, err, dials)
	}
	p.put(addr, c3) // closed: not kept
	if n := len(p.set(addr).shards[5].conns); n != 0 {
		t.Fatalf("%d kept after close", n)
	}
}

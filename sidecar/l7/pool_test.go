package l7

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
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

// Requests of several client connections share upstream connections and
// the answers that live in them (readHead): under -race this finds any
// use of an answer after its connection went back to the pool.
func TestH1ClientsShareUpstreams(t *testing.T) {
	app := rawApp(t)
	h1 := &H1{Target: app, Listener: &stats.Counters{}, BodyLimit: 64 << 10}
	addr := serveH1(t, NewServer(&net.TCPAddr{}, h1, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute))
	req := []byte("GET /x HTTP/1.1\r\nHost: app\r\n\r\n")
	const clients = 3 * poolShards // so that shards are shared
	errs := make(chan error, clients)
	for range clients {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for range 100 {
				c.Write(req)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := h1.Listener.Requests.Load(); n != clients*100 {
		t.Fatalf("%d requests counted, want %d", n, clients*100)
	}
}

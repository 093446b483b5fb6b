package proxy

import (
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/stats"
)

// echoServer echoes every connection until EOF.
func echoServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// egressFront serves an Egress to upstream on a new listener, counting
// each connection as listener.Manager does.
func egressFront(b *testing.B, upstream string) string {
	cl := cluster.New("bench", cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, time.Now)
	cl.Update(cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, []cluster.Spec{{Addr: upstream, AppAddr: upstream, Weight: 1}})
	cl.SetHealth(cl.Endpoints()[0], cluster.Healthy)
	h := &Egress{
		Cluster: cl, Listener: &stats.Counters{}, Dial: (&net.Dialer{}).DialContext,
		Pool: NewBufferPool(32 << 10), Log: zap.NewNop(), ConnectTimeout: time.Second,
		Pipe: PipeConfig{Idle: time.Hour, FirstByte: 3 * time.Second},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.ServeConn(stats.Accepted(c, h.Listener))
			}()
		}
	}()
	return l.Addr().String()
}

// BenchmarkConnection is one short connection (connect, 64 B each way,
// close) direct and through the egress handler; allocations include the
// client's and the echo server's, so compare the two.
func BenchmarkConnection(b *testing.B) {
	for _, via := range []string{"direct", "egress"} {
		b.Run(via, func(b *testing.B) {
			addr := echoServer(b)
			if via == "egress" {
				addr = egressFront(b, addr)
			}
			msg, buf := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write(msg)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkThroughput streams 1 MiB chunks through one connection (an
// echo, so both directions carry it).
func BenchmarkThroughput(b *testing.B) {
	for _, via := range []string{"direct", "egress"} {
		b.Run(via, func(b *testing.B) {
			c := dialEcho(b, via)
			chunk := make([]byte, 1<<20)
			done := make(chan error, 1)
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			go func() {
				_, err := io.CopyN(io.Discard, c, int64(b.N)*int64(len(chunk)))
				done <- err
			}()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// dialEcho connects to a new echo server, directly or through the egress
// handler; the connection closes with b.
func dialEcho(b *testing.B, via string) net.Conn {
	addr := echoServer(b)
	if via == "egress" {
		addr = egressFront(b, addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRoundTrip is one small request and its answer (128 B each
// way) on a kept-alive connection, direct and through the egress handler:
// the shape of RPC traffic over L4, where per-syscall cost, not bytes,
// decides.
func BenchmarkRoundTrip(b *testing.B) {
	for _, via := range []string{"direct", "egress"} {
		b.Run(via, func(b *testing.B) {
			c := dialEcho(b, via)
			msg, buf := make([]byte, 128), make([]byte, 128)
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time, not wall time, is the figure that holds on a busy
			// machine; egress minus direct is the proxy's share.
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

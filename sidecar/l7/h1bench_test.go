package l7

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/stats"
)

// rawApp is an upstream that answers every request head it reads with
// the same fixed answer, allocating nothing per request, so a benchmark's
// allocations are the proxy's own.
func rawApp(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4<<10)
				have := 0
				for {
					n, err := c.Read(buf[have:])
					if err != nil {
						return
					}
					have += n
					for {
						end := bytes.Index(buf[:have], crlf2)
						if end < 0 {
							break
						}
						copy(buf, buf[end+4:have])
						have -= end + 4
						if _, err := c.Write(answer); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkH1KeepAlive is one small GET on a kept-alive connection
// through the fast path, with a raw client and a raw upstream that
// allocate nothing per request: allocs/op is the proxy's own, and
// cpu-ns/op the CPU of all three (the proxy most of it).
func BenchmarkH1KeepAlive(b *testing.B) {
	app := rawApp(b)
	cl := cluster.New("bench", cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, time.Now)
	cl.Update(cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, []cluster.Spec{{Addr: app, AppAddr: app, Weight: 1}})
	cl.SetHealth(cl.Endpoints()[0], cluster.Healthy)
	dial := (&net.Dialer{}).DialContext
	for _, tc := range []struct {
		name string
		h1   *H1
	}{
		{"egress", &H1{Cluster: cl, Listener: &stats.Counters{}, RequestTimeout: 5 * time.Second, Retries: 1, Retriable: map[int]bool{503: true}, BudgetPercent: 20, MinRetries: 3, BodyLimit: 64 << 10, HeadTimeout: 10 * time.Second}},
		{"ingress", &H1{Target: app, Listener: &stats.Counters{}, BodyLimit: 64 << 10}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr := serveH1(b, NewServer(&net.TCPAddr{}, tc.h1, http.NotFoundHandler(), dial, time.Second, time.Minute))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /bench HTTP/1.1\r\nHost: app\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			br := bufio.NewReader(c)
			// The answer's length is the same each time (only the order
			// of its fields may change): learn it from the first.
			c.Write(req)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			c.Write(req)
			n := 0
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					b.Fatal(err)
				}
				n += len(line)
				if len(line) == 2 {
					break
				}
			}
			n += 5
			br.Discard(5)
			buf := make([]byte, n)
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkH1Parallel is BenchmarkH1KeepAlive's egress request from
// several connections at once (4 per GOMAXPROCS): what the shared state
// (counters, the upstream pool, the picker) costs when cores contend for
// it. Run with -cpu 1,2,4 and -mutexprofile.
func BenchmarkH1Parallel(b *testing.B) {
	app := rawApp(b)
	cl := cluster.New("bench", cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, time.Now)
	cl.Update(cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, []cluster.Spec{{Addr: app, AppAddr: app, Weight: 1}})
	cl.SetHealth(cl.Endpoints()[0], cluster.Healthy)
	h1 := &H1{Cluster: cl, Listener: &stats.Counters{}, RequestTimeout: 5 * time.Second, Retries: 1, Retriable: map[int]bool{503: true}, BudgetPercent: 20, MinRetries: 3, BodyLimit: 64 << 10, HeadTimeout: 10 * time.Second}
	addr := serveH1(b, NewServer(&net.TCPAddr{}, h1, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute))
	req := []byte("GET /bench HTTP/1.1\r\nHost: app\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			c.Write(req)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

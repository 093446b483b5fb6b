package h2

import (
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/detourmesh/detour/sidecar/l7"
	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/stats"
)

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// netHTTP serves l7.Egress (the net/http path this package replaces) on
// a loopback listener.
func netHTTP(b *testing.B, app string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tr := l7.NewTransports(dialer, time.Second, time.Minute)
	eg := &l7.Egress{Cluster: newCluster(app), Listener: new(stats.Counters), Transports: tr, GRPC: true,
		BodyLimit: 64 << 10, Pool: &sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	h := listener.NewHTTP(l.Addr(), eg, time.Minute)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.ServeConn(c)
		}
	}()
	b.Cleanup(func() { l.Close(); h.Close(); tr.Close() })
	return l.Addr().String()
}

// BenchmarkUnary: gRPC unary calls (32 in flight on one client
// connection) through the frame proxy, through the net/http path, and
// direct. cpu-ns/op is the whole process's CPU (client, app and proxy)
// per call: a path's cost is its figure less direct's.
func BenchmarkUnary(b *testing.B) {
	app, _ := startApp(b, &app{tag: "a"})
	for _, tc := range []struct {
		name string
		addr func() string
	}{
		{"frames", func() string { return serve(b, egress(newCluster(app))) }},
		{"nethttp", func() string { return netHTTP(b, app) }},
		{"direct", func() string { return app }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := client(b, tc.addr())
			req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 100)}}
			if _, err := c.UnaryCall(ctx(b), req); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				cx := ctx(b)
				for pb.Next() {
					if _, err := c.UnaryCall(cx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkStream: bidi streams (32, one message in flight each) through
// the frame proxy; cpu-ns/op is the process's CPU per message.
func BenchmarkStream(b *testing.B) {
	app, _ := startApp(b, &app{tag: "a"})
	c := client(b, serve(b, egress(newCluster(app))))
	req := &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 100)}}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		st, err := c.FullDuplexCall(ctx(b))
		if err != nil {
			b.Error(err)
			return
		}
		defer st.CloseSend()
		for pb.Next() {
			if err := st.Send(req); err != nil {
				b.Error(err)
				return
			}
			if _, err := st.Recv(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

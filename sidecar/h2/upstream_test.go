package h2

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// goAwayFirst is an upstream whose first connection answers the first
// request with GOAWAY (last stream 0: nothing processed); later ones are
// served by g.
func goAwayFirst(t *testing.T, g *grpc.Server) (string, *atomic.Int32) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if n.Add(1) > 1 {
				//lint:ignore SA1019 one connection served as net/http would
				go (&http2.Server{}).ServeConn(c, &http2.ServeConnOpts{Handler: g})
				continue
			}
			go func() {
				defer c.Close()
				pre := make([]byte, len(preface))
				if _, err := io.ReadFull(c, pre); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				fr.WriteSettings()
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					if _, ok := f.(*http2.HeadersFrame); ok {
						fr.WriteGoAway(0, http2.ErrCodeNo, nil)
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), &n
}

func TestUpstreamGoAwayResendsAndDrains(t *testing.T) {
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, &app{tag: "g"})
	t.Cleanup(g.Stop)
	addr, conns := goAwayFirst(t, g)
	p := egress(newCluster(addr))
	p.Retries = 0
	c := client(t, serve(t, p))
	if r, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("x")}}); err != nil || r.GetUsername() != "g" {
		t.Fatalf("unprocessed request sent again: %v %v", r, err)
	}
	if conns.Load() != 2 {
		t.Fatalf("%d upstream connections, want 2", conns.Load())
	}
	// A graceful stop mid-call: the call in flight finishes, later ones
	// go to the other endpoint.
	blocker := &app{tag: "a", block: true, once: true, started: make(chan struct{}, 1)}
	a, ga := startApp(t, blocker)
	b, _ := startApp(t, &app{tag: "b"})
	p2 := egress(newCluster(a, b))
	c2 := client(t, serve(t, p2))
	cx, cancel := context.WithCancel(ctx(t))
	errc := make(chan error, 1)
	go func() {
		var err error
		for { // round robin: until a call lands on the blocker
			if _, err = c2.UnaryCall(cx, &testpb.SimpleRequest{}); err != nil {
				break
			}
		}
		errc <- err
	}()
	<-blocker.started
	stopped := make(chan struct{})
	go func() { ga.GracefulStop(); close(stopped) }()
	for range 4 {
		if _, err := c2.UnaryCall(ctx(t), &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("after GOAWAY: %v", err)
		}
	}
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("call in flight: %v", err)
	}
	<-stopped
}

// TestClientNotReading: a client that grants huge windows and never
// reads holds back its own stream only; calls of another client sharing
// the upstream connection go on.
func TestClientNotReading(t *testing.T) {
	a, _ := startApp(t, &app{tag: "a"})
	proxy := serve(t, egress(newCluster(a)))
	c := client(t, proxy)
	if _, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fs := newFrames()
	fs.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fs.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	fs.headers(1, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/StreamingOutputCall",
		":authority", "svc", "content-type", "application/grpc", "te", "trailers")
	var params []*testpb.ResponseParameters
	for range 64 {
		params = append(params, &testpb.ResponseParameters{Size: 1 << 20})
	}
	msg, err := proto.Marshal(&testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	frame := append([]byte{0, byte(len(msg) >> 24), byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg...)
	fs.fr.WriteData(1, true, frame)
	if _, err := nc.Write(append([]byte(preface), fs.buf.Bytes()...)); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 1000)}}); err != nil {
			t.Fatalf("beside a client not reading: %v", err)
		}
	}
}

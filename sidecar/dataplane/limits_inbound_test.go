package dataplane

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/sidecarpb"
)

func ingressSnap(version uint64, ip, service, listen string, port int, p sidecarpb.Protocol, lim *sidecarpb.InboundLimit) *sidecarpb.Snapshot {
	return &sidecarpb.Snapshot{Version: version, HostIp: ip, Ingress: []*sidecarpb.IngressListener{
		{Service: service, Listen: listen, Target: hp("127.0.0.1", port), Protocol: p, Limit: lim}}}
}

// TestInboundLimits: over the limit HTTP gets 429 with Retry-After, gRPC
// RESOURCE_EXHAUSTED, L4 a closed connection; counted; changed live.
func TestInboundLimits(t *testing.T) {
	ctx := context.Background()
	d := newDP(t, Default())
	const ip = "127.0.0.3"

	// HTTP: a bucket of 3 and a rate too slow to refill during the test.
	port := httpApp(t, tagHandler("b"), "127.0.0.1")
	listen := hp(ip, freePort(t, ip))
	lim := &sidecarpb.InboundLimit{Rps: 0.01, Burst: 3}
	if err := d.Apply(ctx, ingressSnap(1, ip, "web", listen, port, sidecarpb.Protocol_PROTOCOL_HTTP, lim)); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	codes429 := 0
	for range 10 {
		resp, err := client.Get("http://" + listen + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 429 {
			codes429++
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}
	if codes429 != 7 {
		t.Fatalf("%d of 10 refused, want 7", codes429)
	}
	if s := d.Stats().Listeners[0].Limit; s == nil || s.Admitted != 3 || s.RateLimited != 7 {
		t.Fatalf("limit stats %+v", s)
	}
	// Live: lifted.
	if err := d.Apply(ctx, ingressSnap(2, ip, "web", listen, port, sidecarpb.Protocol_PROTOCOL_HTTP, nil)); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get("http://" + listen + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the limit was lifted: %v %v", resp, err)
	}
	resp.Body.Close()

	// gRPC: one call a (long) while.
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	gport := serveOn(t, func(l net.Listener) { srv.Serve(l) }, srv.Stop, "127.0.0.1")
	glisten := hp(ip, freePort(t, ip))
	if err := d.Apply(ctx, ingressSnap(3, ip, "g", glisten, gport, sidecarpb.Protocol_PROTOCOL_GRPC, &sidecarpb.InboundLimit{Rps: 0.01, Burst: 1})); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(glisten, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the limit: %v, want RESOURCE_EXHAUSTED", err)
	}

	// L4: one connection at a time; the second is closed at once.
	tport := httpApp(t, tagHandler("t"), "127.0.0.1")
	tlisten := hp(ip, freePort(t, ip))
	if err := d.Apply(ctx, ingressSnap(4, ip, "t", tlisten, tport, sidecarpb.Protocol_PROTOCOL_TCP, &sidecarpb.InboundLimit{MaxConcurrent: 1})); err != nil {
		t.Fatal(err)
	}
	c1, err := net.Dial("tcp", tlisten)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	eventually(t, "first connection admitted", func() bool {
		for _, l := range d.Stats().Listeners {
			if l.Service == "t" && l.Limit != nil && l.Limit.InFlight == 1 {
				return true
			}
		}
		return false
	})
	c2, err := net.Dial("tcp", tlisten)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c2.Read(make([]byte, 1)); err != io.EOF && n == 0 && err != nil && !isReset(err) {
		t.Fatalf("second connection: %d %v, want closed", n, err)
	}
}

func isReset(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

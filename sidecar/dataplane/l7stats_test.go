package dataplane

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// listenerView finds the listener of kind on d.
func listenerView(t *testing.T, d *Dataplane, kind string) ListenerView {
	t.Helper()
	for _, l := range d.Stats().Listeners {
		if l.Kind == kind {
			return l
		}
	}
	t.Fatalf("no %s listener in %+v", kind, d.Stats().Listeners)
	return ListenerView{}
}

// TestL7ListenerCounters: an L7 listener counts its connections and the
// bytes on them as an L4 one does (both used to stay at 0: only L4
// handlers counted), on the egress and on the remote's ingress.
func TestL7ListenerCounters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto sidecarpb.Protocol
		app   func(t *testing.T, ips ...string) int
		check *sidecarpb.AppCheck
		calls func(t *testing.T, egress string) (closeClient func())
	}{
		{"grpc", sidecarpb.Protocol_PROTOCOL_GRPC,
			func(t *testing.T, ips ...string) int { return grpcApp(t, &testServer{tag: "b"}, ips...) },
			&sidecarpb.AppCheck{Kind: "grpc"},
			func(t *testing.T, egress string) func() {
				conn, err := grpc.NewClient(egress, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				client := testpb.NewTestServiceClient(conn)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for range 5 {
					if r, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil || r.GetUsername() != "b" {
						t.Fatalf("unary: %v %v", r, err)
					}
				}
				return func() { conn.Close() }
			}},
		{"http1", sidecarpb.Protocol_PROTOCOL_HTTP,
			func(t *testing.T, ips ...string) int { return httpApp(t, tagHandler("b"), ips...) },
			nil,
			func(t *testing.T, egress string) func() {
				client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
				for range 5 {
					if code, body := get(t, client, "http://"+egress+"/p"); code != 200 || body[:1] != "b" {
						t.Fatalf("%d %q", code, body)
					}
				}
				return client.CloseIdleConnections
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startL7Remote(t, "127.0.0.3", "svc", tc.proto, tc.app(t, "127.0.0.1", "127.0.0.3"), tc.check)
			a := newDP(t, Default())
			egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
			if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("svc", tc.proto, b.endpoint()))); err != nil {
				t.Fatal(err)
			}
			waitHealthy(t, a, "svc", b)
			closeClient := tc.calls(t, egress)
			for _, l := range []ListenerView{listenerView(t, a, "egress"), listenerView(t, b.dp, "ingress")} {
				if l.ConnsTotal < 1 || l.BytesIn == 0 || l.BytesOut == 0 || l.Requests < 5 {
					t.Errorf("%s listener after 5 requests: %+v", l.Kind, l.View)
				}
			}
			if l := listenerView(t, a, "egress"); l.ConnsActive < 1 {
				t.Errorf("egress listener with the client connected: %+v", l.View)
			}
			closeClient()
			eventually(t, "egress connections_active back to 0", func() bool { return listenerView(t, a, "egress").ConnsActive == 0 })
		})
	}
}

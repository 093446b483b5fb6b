package dataplane

import (
	"context"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// TestL4Faults: at L4 an abort closes the client's connection at accept,
// a delay holds it before the dial; counted; and the split still applies.
func TestL4Faults(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", sidecarpb.Protocol_PROTOCOL_TCP)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("echo", sidecarpb.Protocol_PROTOCOL_TCP, versioned(b.endpoint(), "1"))
	cl.Routes = &sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{{Name: "v1", Labels: map[string]string{"version": "1"}}},
		Split:   []*sidecarpb.WeightedSubset{{Subset: "v1", Weight: 100}},
		Fault:   &sidecarpb.Fault{AbortPercent: 100, AbortStatus: 503},
	}
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b healthy", func() bool {
		return endpointState(a, "echo", b.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	if got, err := roundTrip(egress, "hello"); err == nil {
		t.Fatalf("an aborted connection answered %q", got)
	}
	if rv := a.Stats().Clusters[0].Routes; rv.Aborted != 1 {
		t.Fatalf("route stats %+v", rv.Stats)
	}
	// A snapshot with the same rules keeps their counts; new rules start
	// at zero.
	if err := a.Apply(context.Background(), egressSnap(2, egress, cl)); err != nil {
		t.Fatal(err)
	}
	if rv := a.Stats().Clusters[0].Routes; rv.Aborted != 1 {
		t.Fatalf("counts lost to an unchanged snapshot: %+v", rv.Stats)
	}
	cl.Routes.Fault = &sidecarpb.Fault{DelayPercent: 100, DelayMs: 1}
	if err := a.Apply(context.Background(), egressSnap(3, egress, cl)); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(egress, "hello"); err != nil || got != "b:hello" {
		t.Fatalf("delayed connection: %q %v", got, err)
	}
	if rv := a.Stats().Clusters[0].Routes; rv.Aborted != 0 || rv.Delayed != 1 {
		t.Fatalf("route stats %+v", rv.Stats)
	}
}

package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// TestWatchUpdateRecomputesOneAnswer: a new subscription or a watch
// result recomputes that service's answer only (all of them made
// subscribing N services O(N²)), and the others keep their revisions.
func TestWatchUpdateRecomputesOneAnswer(t *testing.T) {
	e := newEnv(t, nil)
	const n = 20
	revs := map[string]uint64{}
	for i := range n {
		svc := fmt.Sprintf("svc%d", i)
		e.remote(svc)
		revs[svc] = e.answer(svc, svc+" endpoints", func(a Answer) bool { return len(a.Endpoints) == 2 }).Revision
	}
	// The sidecar's state settles once (its first failed /ready probe
	// here), and that recomputes every answer: wait for it, so the count
	// below is the watch result's alone however slow the machine.
	deadline := time.Now().Add(wait)
	for {
		e.a.mu.Lock()
		settled := e.a.sc.settled
		e.a.mu.Unlock()
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sidecar state never settled")
		}
		<-time.After(5 * time.Millisecond)
	}
	e.a.mu.Lock()
	before := e.a.recomputes
	e.a.mu.Unlock()
	if before > 3*n {
		t.Errorf("subscribing %d services recomputed %d answers, want O(n)", n, before)
	}

	if err := e.other.Register(context.Background(), registry.Endpoint{Service: "svc0", Addr: "10.0.0.4:9000"}); err != nil {
		t.Fatal(err)
	}
	e.answer("svc0", "the new endpoint", func(a Answer) bool { return len(a.Endpoints) == 3 })
	e.a.mu.Lock()
	delta := e.a.recomputes - before
	e.a.mu.Unlock()
	if delta > 2 {
		t.Errorf("one watch result recomputed %d answers, want 1", delta)
	}
	for svc, rev := range revs {
		ans, err := e.a.Resolve(context.Background(), svc)
		if err != nil || (svc != "svc0" && ans.Revision != rev) || (svc == "svc0" && ans.Revision == rev) {
			t.Errorf("%s: revision %d (was %d), %v", svc, ans.Revision, rev, err)
		}
	}
}

// TestSnapshotBuiltWhenSent: changes only mark the sidecar's snapshot;
// it is built when the stream is about to send it, once for any number of
// changes (building it on each made subscribing N services O(N²) with the
// mesh on).
func TestSnapshotBuiltWhenSent(t *testing.T) {
	e := newEnv(t, nil)
	e.a.mu.Lock()
	base := e.a.snapBuilds
	e.a.mu.Unlock()
	const n = 20
	for i := range n {
		svc := fmt.Sprintf("svc%d", i)
		e.remote(svc)
		e.answer(svc, svc+" endpoints", func(a Answer) bool { return len(a.Endpoints) == 2 })
	}
	e.a.mu.Lock()
	built := e.a.snapBuilds - base
	e.a.mu.Unlock()
	if built != 0 {
		t.Fatalf("%d snapshots built with no sidecar to send them to", built)
	}
	sess, err := e.a.SidecarConnect(&sidecarpb.Hello{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	snap, err := sess.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Egress) != n {
		t.Fatalf("snapshot has %d egress listeners, want %d", len(snap.Egress), n)
	}
	e.a.mu.Lock()
	built = e.a.snapBuilds - base
	e.a.mu.Unlock()
	if built != 1 {
		t.Fatalf("%d snapshots built for one send", built)
	}
}

package dataplane

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
)

func healthz(addr, svc string) int {
	resp, err := http.Get("http://" + addr + "/healthz/" + svc)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestStageOneAndHealthPort(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", 0)
	h := hp(b.ip, b.health)
	eventually(t, "200", func() bool { return healthz(h, "echo") == 200 })
	if c := healthz(h, "unknown"); c != 503 { // as a known one down: no enumeration
		t.Fatalf("unknown service: %d", c)
	}
	st := b.dp.Status()
	if len(st.Apps) != 1 || !st.Apps[0].Healthy {
		t.Fatalf("status apps: %v", st.Apps)
	}
	b.app.stop()
	eventually(t, "503", func() bool { return healthz(h, "echo") == 503 })
	eventually(t, "status unhealthy", func() bool {
		a := b.dp.Status().Apps
		return len(a) == 1 && !a[0].Healthy && a[0].Reason != ""
	})
}

func TestStageTwoRoutesOnlyToHealthy(t *testing.T) {
	good := startRemote(t, "127.0.0.3", "echo", "good", 0)
	appDown := startRemote(t, "127.0.0.4", "echo", "appdown", 0)
	appDown.app.stop() // its sidecar answers 503 from now on
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	// A third endpoint whose sidecar and app are both gone.
	gone := meshEP("127.0.0.5", freePort(t, "127.0.0.5"), freePort(t, "127.0.0.5"), freePort(t, "127.0.0.5"))
	c := clusterOf("echo", 0, good.endpoint(), appDown.endpoint(), gone)
	if err := a.Apply(context.Background(), egressSnap(1, egress, c)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "states", func() bool {
		return endpointState(a, "echo", good.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY &&
			endpointState(a, "echo", appDown.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_APP_DOWN &&
			endpointState(a, "echo", gone.Addr) == sidecarpb.EndpointHealth_STATE_SIDECAR_DOWN
	})
	// A connection sent to appDown's or gone's sidecar would fail (no app
	// behind it, or no sidecar): every one answered by good proves stage 2
	// kept them out. (Counting appDown's accepted connections would not:
	// its sidecar's own stage-1 probe may connect before the app stops.)
	for range 20 {
		if got, err := roundTrip(egress, "m"); err != nil || got != "good:m" {
			t.Fatalf("got %q %v: traffic reached an endpoint stage 2 calls down", got, err)
		}
	}
}

func TestBypassWhenRemoteSidecarDown(t *testing.T) {
	for _, bypass := range []bool{true, false} {
		b := startRemote(t, "127.0.0.3", "echo", "b", 0)
		other := startRemote(t, "127.0.0.4", "echo", "other", 0)
		cfg := Default()
		cfg.Bypass = bypass
		a := newDP(t, cfg)
		egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
		if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, b.endpoint(), other.endpoint()))); err != nil {
			t.Fatal(err)
		}
		eventually(t, "healthy", func() bool {
			return endpointState(a, "echo", b.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
		})
		// b's sidecar dies; its app lives on at 127.0.0.3:PORT.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b.dp.Shutdown(ctx)
		cancel()
		want := sidecarpb.EndpointHealth_STATE_SIDECAR_DOWN
		if bypass {
			want = sidecarpb.EndpointHealth_STATE_BYPASS
		}
		eventually(t, want.String(), func() bool { return endpointState(a, "echo", b.endpoint().Addr) == want })
		seen := map[string]bool{}
		for range 30 {
			got, err := roundTrip(egress, "m")
			if err != nil {
				t.Fatal(err)
			}
			seen[got] = true
		}
		if seen["b:m"] != bypass {
			t.Fatalf("bypass=%v: answers %v", bypass, seen)
		}
		if bypass {
			var bypassed uint64
			for _, e := range a.Stats().Clusters[0].Endpoints {
				bypassed += e.Bypassed
			}
			if bypassed == 0 {
				t.Fatal("bypass not in stats")
			}
		}
	}
}

func TestPanicThresholdRoutesToAll(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", 0)
	c := startRemote(t, "127.0.0.4", "echo", "c", 0)
	// Both remote sidecars report their app down though the apps answer.
	hb := startHealth(t, hp("127.0.0.3", freePort(t, "127.0.0.3")), 503)
	hc := startHealth(t, hp("127.0.0.4", freePort(t, "127.0.0.4")), 503)
	eb, ec := b.endpoint(), c.endpoint()
	eb.HealthPort, ec.HealthPort = uint32(hb.port), uint32(hc.port)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, eb, ec))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "app down", func() bool {
		return endpointState(a, "echo", eb.Addr) == sidecarpb.EndpointHealth_STATE_APP_DOWN &&
			endpointState(a, "echo", ec.Addr) == sidecarpb.EndpointHealth_STATE_APP_DOWN
	})
	if got, err := roundTrip(egress, "m"); err != nil || (got != "b:m" && got != "c:m") {
		t.Fatalf("panic mode must still route: %q %v", got, err)
	}
	if !a.Stats().Clusters[0].Panic {
		t.Fatal("panic not in stats")
	}
	// Without a panic threshold nothing is routable.
	cl := clusterOf("echo", 0, eb, ec)
	cl.Outlier.PanicThreshold = 0
	if err := a.Apply(context.Background(), egressSnap(2, egress, cl)); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(egress, "m"); err == nil {
		t.Fatalf("no healthy endpoint, no panic: got %q", got)
	}
}

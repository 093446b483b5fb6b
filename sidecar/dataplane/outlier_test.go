package dataplane

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/stats"
)

// TestEjection: each kind of failure ejects an endpoint that active
// checking still calls healthy.
func TestEjection(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind int
		// bad returns the endpoint's addr (its health port answers 200).
		bad func(t *testing.T) string
	}{
		{"connect_refused", stats.ConnectRefused, func(t *testing.T) string {
			return hp("127.0.0.5", freePort(t, "127.0.0.5"))
		}},
		{"connect_timeout", stats.ConnectTimeout, func(t *testing.T) string {
			return "127.0.0.5:9" // the test dialer blackholes it
		}},
		{"first_byte_timeout", stats.FirstByteTimeout, func(t *testing.T) string {
			hung := startApp(t, "hung", true, "127.0.0.5") // accepts, never answers
			return hp("127.0.0.5", hung.port)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := startRemote(t, "127.0.0.3", "echo", "good", 0)
			hs := startHealth(t, hp("127.0.0.5", freePort(t, "127.0.0.5")), 200)
			badAddr := tc.bad(t)
			bad := &sidecarpb.Endpoint{Addr: badAddr, AppAddr: badAddr, Weight: 100, HealthPort: uint32(hs.port), Mesh: true}
			dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == "127.0.0.5:9" {
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			a := newDP(t, Default(), WithDial(dial))
			egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
			c := clusterOf("echo", 0, good.endpoint(), bad)
			c.ConnectTimeout = durationpb.New(50 * time.Millisecond)
			c.Outlier.FirstByteTimeout = durationpb.New(100 * time.Millisecond)
			if err := a.Apply(context.Background(), egressSnap(1, egress, c)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "both healthy", func() bool {
				return endpointState(a, "echo", bad.Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY &&
					endpointState(a, "echo", good.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
			})
			eventually(t, "ejected", func() bool {
				roundTrip(egress, "m")
				return endpointState(a, "echo", bad.Addr) == sidecarpb.EndpointHealth_STATE_EJECTED
			})
			for _, e := range a.Stats().Clusters[0].Endpoints {
				if e.Addr == bad.Addr && (e.Ejections != 1 || e.Failures[stats.KindNames[tc.kind]] < 3) {
					t.Fatalf("stats: %+v", e)
				}
			}
			for range 10 {
				if got, err := roundTrip(egress, "m"); err != nil || got != "good:m" {
					t.Fatalf("after ejection: %q %v", got, err)
				}
			}
		})
	}
}

func TestConnectRetryGoesElsewhere(t *testing.T) {
	good := startRemote(t, "127.0.0.3", "echo", "good", 0)
	hs := startHealth(t, hp("127.0.0.5", freePort(t, "127.0.0.5")), 200)
	refused := hp("127.0.0.5", freePort(t, "127.0.0.5"))
	bad := &sidecarpb.Endpoint{Addr: refused, AppAddr: refused, Weight: 100, HealthPort: uint32(hs.port), Mesh: true}
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	c := clusterOf("echo", 0, good.endpoint(), bad)
	c.Retries = 1
	c.Outlier.ConsecutiveFailures = 1000
	if err := a.Apply(context.Background(), egressSnap(1, egress, c)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy", func() bool {
		return endpointState(a, "echo", bad.Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY &&
			endpointState(a, "echo", good.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	for range 30 {
		if got, err := roundTrip(egress, "m"); err != nil || got != "good:m" {
			t.Fatalf("with a retry every connection must succeed: %q %v", got, err)
		}
	}
	if a.Stats().Clusters[0].Retries == 0 {
		t.Fatal("no retry counted")
	}
}

func TestGracefulDrain(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", 0)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy", func() bool {
		return endpointState(a, "echo", b.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("x"))
	buf := make([]byte, 64)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if n, _ := conn.Read(buf); string(buf[:n]) != "b:x" {
		t.Fatal("no echo")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- a.Shutdown(ctx)
	}()
	eventually(t, "not ready", func() bool { return !a.Ready() })
	eventually(t, "not accepting", func() bool {
		c, err := net.DialTimeout("tcp", egress, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The connection in flight still works.
	conn.Write([]byte("y"))
	if n, _ := conn.Read(buf); string(buf[:n]) != "b:y" {
		t.Fatalf("in-flight connection broken during drain: %q", buf[:n])
	}
	select {
	case err := <-done:
		t.Fatalf("shutdown returned with a connection open: %v", err)
	default:
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}

	// A connection that outlives the deadline is closed.
	c2 := startRemote(t, "127.0.0.4", "echo", "c", 0)
	a2 := newDP(t, Default())
	if err := a2.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, c2.endpoint()))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy", func() bool {
		return endpointState(a2, "echo", c2.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	long, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	long.Write([]byte("z"))
	long.Read(buf)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a2.Shutdown(ctx); err == nil {
		t.Fatal("drain past the deadline must say so")
	}
	long.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := long.Read(buf); err == nil {
		t.Fatal("connection still open after the drain deadline")
	}
}

// TestActiveRecoveryEndsEjection: an endpoint ejected for refusing
// connections returns at once when stage 2 sees it down and then up.
func TestActiveRecoveryEndsEjection(t *testing.T) {
	good := startRemote(t, "127.0.0.3", "echo", "good", 0)
	flaky := startRemote(t, "127.0.0.4", "echo", "flaky", 0)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	// The cluster dials flaky at a port where nothing listens, but checks
	// it through its real sidecar's health port.
	bad := flaky.endpoint()
	bad.Addr = hp("127.0.0.4", freePort(t, "127.0.0.4"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, good.endpoint(), bad))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy", func() bool { return endpointState(a, "echo", bad.Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY })
	eventually(t, "ejected", func() bool {
		roundTrip(egress, "m")
		return endpointState(a, "echo", bad.Addr) == sidecarpb.EndpointHealth_STATE_EJECTED
	})
	// Its app goes down (stage 2: app down) and comes back.
	flaky.app.stop()
	eventually(t, "app down (while ejected)", func() bool {
		for _, e := range a.Stats().Clusters[0].Endpoints {
			if e.Addr == bad.Addr {
				return e.Health == "app_down" && e.Ejected
			}
		}
		return false
	})
	app := startApp(t, "flaky2", false, "127.0.0.1")
	snap := &sidecarpb.Snapshot{
		Version: 2, HostIp: flaky.ip, HealthListen: hp(flaky.ip, flaky.health),
		Ingress:   []*sidecarpb.IngressListener{{Service: "echo", Listen: hp(flaky.ip, flaky.ingress), Target: hp("127.0.0.1", app.port)}},
		AppChecks: []*sidecarpb.AppCheck{{Service: "echo", Target: hp("127.0.0.1", app.port), Check: fastCheck()}},
	}
	if err := flaky.dp.Apply(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	// The base ejection is a minute: healthy now means the recovery ended it.
	eventually(t, "back early", func() bool { return endpointState(a, "echo", bad.Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY })
}

func TestConnectionLimit(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", 0)
	cfg := Default()
	cfg.MaxConnections = 1
	a := newDP(t, cfg)
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy", func() bool {
		return endpointState(a, "echo", b.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	first, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.Write([]byte("1"))
	first.SetDeadline(time.Now().Add(5 * time.Second))
	if n, _ := first.Read(make([]byte, 8)); n == 0 {
		t.Fatal("first connection")
	}
	if got, err := roundTrip(egress, "2"); err == nil {
		t.Fatalf("second connection over the limit answered %q", got)
	}
	if n := a.Stats().Clusters[0].Failures["overflow"]; n != 1 {
		t.Fatalf("overflow = %d", n)
	}
}

package dataplane

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// remote is a server-side host: its sidecar fronts one app.
type remote struct {
	ip                    string
	dp                    *Dataplane
	app                   *tcpApp
	ingress, health, port int
}

func startRemote(t *testing.T, ip, service, tag string, proto sidecarpb.Protocol) *remote {
	t.Helper()
	app := startApp(t, tag, false, "127.0.0.1", ip)
	r := &remote{ip: ip, app: app, port: app.port, ingress: freePort(t, ip), health: freePort(t, ip)}
	r.dp = newDP(t, Default())
	snap := &sidecarpb.Snapshot{
		Version: 1, HostIp: ip, HealthListen: hp(ip, r.health),
		Ingress:   []*sidecarpb.IngressListener{{Service: service, Listen: hp(ip, r.ingress), Target: hp("127.0.0.1", app.port), Protocol: proto}},
		AppChecks: []*sidecarpb.AppCheck{{Service: service, Target: hp("127.0.0.1", app.port), Kind: "tcp", Check: fastCheck()}},
	}
	if err := r.dp.Apply(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *remote) endpoint() *sidecarpb.Endpoint { return meshEP(r.ip, r.ingress, r.port, r.health) }

func egressSnap(version uint64, listen string, c *sidecarpb.Cluster) *sidecarpb.Snapshot {
	return &sidecarpb.Snapshot{
		Version: version, HostIp: "127.0.0.2",
		Egress:   []*sidecarpb.EgressListener{{Service: c.GetService(), Listen: listen, Protocol: c.GetProtocol()}},
		Clusters: []*sidecarpb.Cluster{c},
	}
}

func TestL4MeshPathAndLiveReconfiguration(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", sidecarpb.Protocol_PROTOCOL_TCP)
	c := startRemote(t, "127.0.0.4", "echo", "c", sidecarpb.Protocol_PROTOCOL_TCP)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	if !a.Ready() || a.AppliedVersion() != 1 {
		t.Fatal("not ready after apply")
	}
	eventually(t, "b healthy", func() bool {
		return endpointState(a, "echo", b.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	got, err := roundTrip(egress, "hello")
	if err != nil || got != "b:hello" {
		t.Fatalf("mesh path: %q %v", got, err)
	}

	// A long-lived connection across a reconfiguration.
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(msg string) string {
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		conn.Write([]byte(msg))
		buf := make([]byte, 100)
		n, _ := conn.Read(buf)
		return string(buf[:n])
	}
	if got := echo("one"); got != "b:one" {
		t.Fatalf("got %q", got)
	}
	// v2: endpoints change to c only, and a second listener appears.
	egress2 := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	snap := egressSnap(2, egress, clusterOf("echo", 0, c.endpoint()))
	snap.Egress = append(snap.Egress, &sidecarpb.EgressListener{Service: "other", Listen: egress2})
	direct := &sidecarpb.Endpoint{Addr: hp(b.ip, b.port), Weight: 1} // not in the mesh: the app itself
	snap.Clusters = append(snap.Clusters, clusterOf("other", 0, direct))
	if err := a.Apply(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	if got := echo("two"); got != "b:two" {
		t.Fatalf("the open connection was disturbed by the change: %q", got)
	}
	eventually(t, "c healthy", func() bool {
		return endpointState(a, "echo", c.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	if got, err := roundTrip(egress, "x"); err != nil || got != "c:x" {
		t.Fatalf("new connections must go to c: %q %v", got, err)
	}
	eventually(t, "other healthy", func() bool { return endpointState(a, "other", direct.Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY })
	if got, err := roundTrip(egress2, "y"); err != nil || got != "b:y" {
		t.Fatalf("added listener: %q %v", got, err)
	}
	// v3 removes the second listener.
	if err := a.Apply(context.Background(), egressSnap(3, egress, clusterOf("echo", 0, c.endpoint()))); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", egress2, time.Second); err == nil {
		t.Fatal("removed listener still accepts")
	}
	if got := echo("three"); got != "b:three" {
		t.Fatalf("open connection: %q", got)
	}
	st := a.Stats()
	if len(st.Listeners) != 1 || st.Listeners[0].ConnsTotal < 3 || st.Listeners[0].BytesIn == 0 {
		t.Fatalf("stats: %+v", st.Listeners)
	}
}

func TestRejectedSnapshotKeepsPreviousState(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", 0)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("echo", 0, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := hp("127.0.0.2", freePort(t, "127.0.0.2"))

	bad := egressSnap(2, egress, clusterOf("echo", 0, b.endpoint()))
	bad.Egress = append(bad.Egress,
		&sidecarpb.EgressListener{Service: "x", Listen: free},
		&sidecarpb.EgressListener{Service: "y", Listen: taken.Addr().String()})
	bad.Clusters = append(bad.Clusters, clusterOf("x", 0, b.endpoint()), clusterOf("y", 0, b.endpoint()))
	err = a.Apply(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "bind") {
		t.Fatalf("port taken: %v", err)
	}
	if _, err := net.DialTimeout("tcp", free, time.Second); err == nil {
		t.Fatal("a listener of the rejected snapshot is up")
	}

	invalid := []func(*sidecarpb.Snapshot){
		func(s *sidecarpb.Snapshot) { s.Egress[0].Listen = "10.1.2.3:80" },           // egress not on loopback
		func(s *sidecarpb.Snapshot) { s.Clusters[0].Endpoints[0].Weight = 0 },        // weight
		func(s *sidecarpb.Snapshot) { s.Clusters[0].Endpoints[0].Addr = "nonsense" }, // addr
		func(s *sidecarpb.Snapshot) { s.Clusters = nil },                             // no cluster
		func(s *sidecarpb.Snapshot) {
			s.Ingress = []*sidecarpb.IngressListener{{Service: "z", Listen: "127.0.0.2:1", Target: "10.0.0.9:22"}} // open relay
		},
		func(s *sidecarpb.Snapshot) {
			s.Ingress = []*sidecarpb.IngressListener{{Service: "z", Listen: "127.0.0.9:1", Target: "127.0.0.1:22"}} // not host_ip
		},
	}
	for i, mutate := range invalid {
		s := egressSnap(uint64(10+i), egress, clusterOf("echo", 0, b.endpoint()))
		mutate(s)
		if err := a.Apply(context.Background(), s); err == nil {
			t.Errorf("invalid snapshot %d accepted", i)
		}
	}
	if a.AppliedVersion() != 1 || !a.Ready() {
		t.Fatalf("previous state lost: version %d", a.AppliedVersion())
	}
	eventually(t, "b healthy", func() bool {
		return endpointState(a, "echo", b.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_HEALTHY
	})
	if got, err := roundTrip(egress, "still"); err != nil || got != "b:still" {
		t.Fatalf("previous listener: %q %v", got, err)
	}
}

func TestIngressOnlyReachesItsTarget(t *testing.T) {
	b := startRemote(t, "127.0.0.3", "echo", "b", 0)
	other := startApp(t, "other", false, "127.0.0.1")
	// Whatever the client sends, the ingress connects to its target only.
	for _, msg := range []string{"CONNECT 127.0.0.1:" + itoa(other.port) + " HTTP/1.1\r\n\r\n", "hello"} {
		got, err := roundTrip(hp(b.ip, b.ingress), msg)
		if err != nil || !strings.HasPrefix(got, "b:") {
			t.Fatalf("ingress answered %q %v", got, err)
		}
	}
	if other.accepted() != 0 {
		t.Fatal("ingress reached a port it was not given")
	}
}

func itoa(i int) string { return hp("", i)[1:] }

package integration

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// TestDubboGoAppLevel is TestDubboGoFrontEnds with Dubbo 3's
// application-level discovery: the dubbo-go pair with --registry-type
// service --metadata remote. B's provider writes its instance,
// /services/APP/B:PORT, into B's front end; B's agent publishes it as
// APP:dubbo and registers the app's own instance at B's ingress (on
// ZooKeeper: /services/APP/B:INGRESS, the instance JSON with address,
// port and dubbo.endpoints rewritten); A's front end answers the
// consumer's read of /services/APP with one instance at A's egress.
// On ZooKeeper, a dubbo-go consumer outside the mesh, its registry the
// real ZooKeeper, calls the provider through B's ingress. Then the same
// phases: A's and B's sidecar SIGKILLed and back, the mesh
// flag off and on, the provider SIGKILLed, failed calls per phase.
//
// The mapping (/dubbo/mapping/INTERFACE) and the metadata report
// (/dubbo/APP/REVISION) the consumer needs reach A's front end from B's
// through the registry (the front ends' pass-through).
func TestDubboGoAppLevel(t *testing.T) { every(t, false, dubboGoAppLevel) }

func dubboGoAppLevel(t *testing.T, be *backend) {
	m := startDubboMeshAt(t, be, "dubbo", "service")
	m.checkTakeover(t)
	if be.zkAddr != "" {
		m.plainConsumer(t)
	}
	m.clientSidecarKilled(t)
	m.serverSidecarKilled(t)
	m.meshOffAndOn(t)
	m.providerKilled(t)
}

// TestDubboGoAppLevelTriple: the same on Triple (one endpoint, protocol
// tri: the service APP:tri, carried as gRPC), A's sidecar SIGKILLed and
// back.
func TestDubboGoAppLevelTriple(t *testing.T) { every(t, false, dubboGoAppLevelTriple) }

func dubboGoAppLevelTriple(t *testing.T, be *backend) {
	m := startDubboMeshAt(t, be, "tri", "service")
	m.checkTakeover(t)
	m.clientSidecarKilled(t)
	total := m.consumer.stop(t)
	m.carried(t, "from A's sidecar's start to the consumer's end", total.OK, true)
	t.Logf("figure: dubbo-go (%s), whole run: ok=%d failed=%d (%d in the phase above)", m.upstream, total.OK, total.Failed, m.failedInPhases)
	if total.Failed != m.failedInPhases {
		t.Errorf("%d calls failed outside the phase", total.Failed-m.failedInPhases)
	}
}

// shareMetadata: the provider's mapping and metadata report, written
// into B's front end, reach A's front end through the registry (the
// front ends' pass-through), as the consumer needs them.
func (m *dubboMesh) shareMetadata(t *testing.T) {
	t.Helper()
	app, _, _ := dubboapp.ParseServiceName(m.service)
	mapping := "/dubbo/mapping/" + m.iface
	b := dialFrontEnd(t, m.b.ZooKeeperAddr())
	a := dialFrontEnd(t, m.a.ZooKeeperAddr())
	var revs []string
	eventually(t, 30*time.Second, "B's front end holds the mapping and the metadata report", func() bool {
		ok, _, _ := b.Exists(mapping)
		revs, _, _ = b.Children("/dubbo/" + app)
		return ok && (len(revs) > 0 || m.localMetadata)
	})
	nodes := []string{mapping}
	for _, r := range revs {
		nodes = append(nodes, "/dubbo/"+app+"/"+r)
	}
	seen := time.Now()
	eventually(t, 10*time.Second, "A's front end has B's mapping and metadata report", func() bool {
		for _, n := range nodes {
			if ok, _, _ := a.Exists(n); !ok {
				return false
			}
		}
		data, _, err := a.Get(mapping)
		return err == nil && strings.Contains(string(data), app)
	})
	t.Logf("A's front end has %v (pass-through), %v after B's", nodes, time.Since(seen).Round(time.Millisecond))
}

func dialFrontEnd(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// checkAppTakeover: the registry holds B's ingress with the app's own
// instance metadata; on ZooKeeper, the instance node at B's ingress; A's
// front end answers one instance at A's egress; the calls cross both
// sidecars.
func (m *dubboMesh) checkAppTakeover(t *testing.T) {
	t.Helper()
	eps := registered(t, m.reg, m.service)
	if len(eps) != 1 {
		t.Fatalf("registry holds %v", eps)
	}
	ep := eps[0]
	if host, _, _ := net.SplitHostPort(ep.Addr); ep.Addr == m.appAddr || host != m.b.IP {
		t.Errorf("registered %s, want B's ingress (not the app's %s)", ep.Addr, m.appAddr)
	}
	rev := ep.Metadata["dubbo.metadata.revision"]
	for k, want := range map[string]string{
		"detour.port": strconv.Itoa(m.appPort), "detour.protocol": m.protocol, "dubbo.metadata.storage-type": "remote",
	} {
		if got := ep.Metadata[k]; got != want {
			t.Errorf("registered metadata %s = %q, want %q (all: %v)", k, got, want, ep.Metadata)
		}
	}
	if rev == "" || rev == "0" {
		t.Errorf("registered without the app's metadata revision: %v", ep.Metadata)
	}
	app, _, _ := dubboapp.ParseServiceName(m.service)
	if m.be.zkAddr != "" {
		conn := dialFrontEnd(t, m.be.zkAddr)
		node := dubboapp.Dir(app) + "/" + m.ingress
		data, _, err := conn.Get(node)
		if err != nil {
			t.Fatalf("%s in ZooKeeper: %v", node, err)
		}
		m.checkInstance(t, "ZooKeeper's "+node, data, m.ingress, rev)
		t.Logf("ZooKeeper holds %s = %s", node, data)
	}

	kids, _ := m.view.wait(t, time.Time{}, 10*time.Second, "A's front end answers A's egress", m.only(m.egress))
	a := dialFrontEnd(t, m.a.ZooKeeperAddr())
	data, _, err := a.Get(m.viewDir + "/" + kids[0])
	if err != nil {
		t.Fatal(err)
	}
	m.checkInstance(t, "A's front end's instance", data, m.egress, rev)
	t.Logf("A's consumer reads %s/%s = %s", m.viewDir, kids[0], data)
	if r := m.consumer.snapshot(t); r.Failed != 0 {
		t.Errorf("%d calls failed before anything failed", r.Failed)
	}
	m.steady(t, "through both sidecars", viaMesh, true)
}

// checkInstance: data is the app's instance at addr, its one endpoint
// of the protocol there, with the app's metadata revision.
func (m *dubboMesh) checkInstance(t *testing.T, what string, data []byte, addr, rev string) {
	t.Helper()
	in, err := dubboapp.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v: %s", what, err, data)
	}
	eps, err := in.Endpoints()
	_, port, _ := net.SplitHostPort(addr)
	if err != nil || len(eps) != 1 || strconv.Itoa(eps[0].Port) != port || eps[0].Protocol != m.protocol ||
		in.Addr() != addr || in.Metadata["dubbo.metadata.revision"] != rev {
		t.Errorf("%s: %s; want address and dubbo.endpoints at %s (%s), revision %s", what, data, addr, m.protocol, rev)
	}
}

// TestDubboGoAppLevelLocalMetadata: the provider keeps its metadata
// local (--metadata local, dubbo-go's default): a consumer fetches it
// from the provider's MetadataService, at the instance's address and a
// port of its own, which no sidecar carries. B still publishes the
// instance (the registry holds B's ingress), but A's front end shows the
// consumer the provider's real address, and the calls go straight to
// the provider, none failing; A's egress is unused.
func TestDubboGoAppLevelLocalMetadata(t *testing.T) { every(t, false, dubboGoAppLevelLocalMetadata) }

func dubboGoAppLevelLocalMetadata(t *testing.T, be *backend) {
	m := startDubboMeshAt(t, be, "dubbo", "service/local")
	eps := registered(t, m.reg, m.service)
	if len(eps) != 1 || eps[0].Addr != m.ingress || eps[0].Metadata["dubbo.metadata.storage-type"] != "local" {
		t.Errorf("registry holds %v; want B's ingress %s with local metadata", eps, m.ingress)
	}
	kids, _ := m.view.wait(t, time.Time{}, 10*time.Second, "A's front end answers the provider's own address", m.only(m.appAddr))
	a := dialFrontEnd(t, m.a.ZooKeeperAddr())
	data, _, err := a.Get(m.viewDir + "/" + kids[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("A's consumer reads %s/%s = %s", m.viewDir, kids[0], data)
	m.steady(t, "local metadata, straight to the provider", viaDirect, true)
	total := m.consumer.stop(t)
	t.Logf("figure: dubbo-go (%s), whole run: ok=%d failed=%d, A's egress unused", m.upstream, total.OK, total.Failed)
	if total.Failed != 0 {
		t.Errorf("%d calls failed", total.Failed)
	}
}

// plainConsumer: a dubbo-go consumer outside the mesh, its registry the
// real ZooKeeper, accepts what the agents wrote there (the instance at
// B's ingress, the mapping and metadata report passed through) and
// calls the provider through B's ingress.
func (m *dubboMesh) plainConsumer(t *testing.T) {
	t.Helper()
	before := sidecarStats(t, m.b).Listener("ingress", m.service)
	p := appIn(t, dubbogoBin(t), "dubbo-consumer", "--registry", "zookeeper://"+m.be.zkAddr, "--registry-type", "service",
		"--protocol", m.protocol, "--interface", m.iface, "--app", "plain-consumer", "--rate", "20", "--wait", "30s")
	c := &dubboConsumer{Proc: p, rate: 20}
	c.waitOK(t, 40, "the plain consumer's calls")
	r := c.stop(t)
	after := sidecarStats(t, m.b).Listener("ingress", m.service)
	if r.Failed != 0 || after.Requests-before.Requests < uint64(r.OK) {
		t.Errorf("consumer on the real ZooKeeper: ok=%d failed=%d; B's ingress counted %d requests meanwhile", r.OK, r.Failed, after.Requests-before.Requests)
	}
	t.Logf("figure: dubbo-go (%s), a consumer outside the mesh on the real ZooKeeper: ok=%d failed=%d; B's ingress counted %d requests meanwhile (its calls and A's consumer's)",
		m.upstream, r.OK, r.Failed, after.Requests-before.Requests)
}

// TestDubboGoAppLevelTwoInstances: the same app on B and on C (the same
// interface and metadata, so the same revision), the consumer on A. The
// registry holds both ingresses; A's consumer reads one instance, at A's
// egress, which balances the calls over B's and C's ingresses. Then C's
// provider SIGKILLed: the calls go on through B, failed ones counted.
func TestDubboGoAppLevelTwoInstances(t *testing.T) { every(t, false, dubboGoAppLevelTwoInstances) }

func dubboGoAppLevelTwoInstances(t *testing.T, be *backend) {
	m := startDubboMeshAt(t, be, "dubbo", "service")
	app, _, _ := dubboapp.ParseServiceName(m.service)
	c := be.host(t, ipC, "", frontEndArgs(ipC)...)
	c.startSidecar()
	c.waitSidecar("up")
	started := time.Now()
	cProvider := appIn(t, dubbogoBin(t), "dubbo-provider", "--host", c.IP, "--port", strconv.Itoa(freePort(t, c.IP)),
		"--registry", "zookeeper://"+c.ZooKeeperAddr(), "--registry-type", "service", "--metadata", "remote",
		"--app", app, "--interface", m.iface, "--protocol", "dubbo", "--name", "provider-C")
	_, at := m.regs.wait(t, started, 60*time.Second, "B's and C's ingresses registered", func(eps []registry.Endpoint) bool {
		return len(eps) == 2 && eps[0].Metadata["detour.mesh"] == "true" && eps[1].Metadata["detour.mesh"] == "true"
	})
	t.Logf("figure: dubbo-go (%s): second instance (C) started -> both ingresses in the registry in %v", m.upstream, at.Sub(started).Round(time.Millisecond))
	m.view.wait(t, time.Time{}, 10*time.Second, "A's consumers read one instance at A's egress", m.only(m.egress))

	cIngress := func() uint64 { return sidecarStats(t, c).Listener("ingress", m.service).Requests }
	bIngress := func() uint64 { return sidecarStats(t, m.b).Listener("ingress", m.service).Requests }
	b0, c0 := bIngress(), cIngress()
	r0 := m.consumer.snapshot(t)
	r1 := m.consumer.waitOK(t, r0.OK+2*m.consumer.rate, "two seconds of calls over both instances")
	eventually(t, 10*time.Second, "C's ingress carries calls", func() bool { return cIngress() > c0 })
	b1, c1 := bIngress(), cIngress()
	t.Logf("figure: dubbo-go (%s), two instances behind A's egress: %d calls ok, %d failed; B's ingress %d requests, C's %d",
		m.upstream, r1.OK-r0.OK, r1.Failed-r0.Failed, b1-b0, c1-c0)
	if r1.Failed != r0.Failed || b1 == b0 {
		t.Errorf("calls over both instances: %d failed, B's ingress %d requests", r1.Failed-r0.Failed, b1-b0)
	}

	r0 = m.consumer.snapshot(t)
	killed := time.Now()
	if err := cProvider.Kill(); err != nil {
		t.Fatal(err)
	}
	_, gone := m.regs.wait(t, killed, 30*time.Second, "C's instance gone from the registry", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == m.ingress
	})
	clean := m.steady(t, "C's provider gone", viaMesh, false)
	m.phase(t, "C's provider SIGKILLed (B's on)", r0, "C's entry gone "+since(killed, gone)+" after the kill; a second without failure began "+since(killed, clean)+" after it")
	if kids := m.viewNow(); !m.only(m.egress)(kids) {
		t.Errorf("A's consumers read %v; want one instance at A's egress", kids)
	}
}

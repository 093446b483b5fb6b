package integration

import (
	"net"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl"
)

// TestDubboGoFrontEnds is issue 14 end to end: an unmodified dubbo-go
// provider on B and consumer on A (integration/dubbogo), each with only
// its registry address pointed at its host's agent (the ZooKeeper front
// end, interface-level registration, the dubbo protocol), call each
// other through both sidecars at 100 calls/s; the registry holds B's
// ingress with the app's own parameters, A's front end answers A's
// egress. Then, the calls going on throughout: A's sidecar SIGKILLed and
// back, B's sidecar SIGKILLed and back, the mesh flag off and on on A,
// and last the provider SIGKILLed. Failed calls are counted per phase.
//
// What may fail, by design: dubbo-go retries nothing here (retries 0,
// as a mesh app is configured) and keeps its connections per provider
// URL, so a call in flight on a hop that dies fails (at its 1 s
// timeout), and so do the calls dubbo-go sends on a closed connection
// until it has reconnected (B's sidecar killed: the URL, A's egress,
// stays the same); when the providers list changes (A's sidecar killed
// or back, the mesh flag), dubbo-go handles the provider node's own
// deletion event before the list's and can see no provider for a
// moment, and a call in flight on the invoker it destroys can fail;
// after the provider's SIGKILL every call fails. With nothing changing
// none may fail: the first second through the mesh must be clean; each
// phase ends with a clean second (within 30 s: dubbo-go drops its
// dead connections one by one) on the path the phase implies (the
// sidecars' open connections say which), and the bytes of every
// stretch through the mesh are checked in both sidecars once its
// connections have ended (an L4 splice is counted when it returns, see
// testbed.Counters).
//
// Application-level registration (/services/APP): TestDubboGoAppLevel.
func TestDubboGoFrontEnds(t *testing.T) { every(t, false, dubboGoFrontEnds) }

const (
	dubboService   = "org.detour.Greeter"
	dubboProviders = "/dubbo/" + dubboService + "/providers"
	dubboRate      = 100
	// dubboFrame is the dubbo protocol's header: every call is a request
	// frame and a response frame, each longer than it (about 200 bytes
	// here), so a hop carried at least this much per call each way.
	dubboFrame = 16
)

func dubboGoFrontEnds(t *testing.T, be *backend) {
	m := startDubboMesh(t, be)
	m.checkTakeover(t)
	t.Run("zkCli", func(t *testing.T) { zkCliOnFrontEnd(t, m) })
	m.clientSidecarKilled(t)
	m.serverSidecarKilled(t)
	m.meshOffAndOn(t)
	m.providerKilled(t)
}

// dubboMesh is the dubbo-go pair across hosts A and B.
type dubboMesh struct {
	be       *backend
	upstream string // the registry's name, for the figures
	protocol string // the apps' Dubbo protocol: dubbo or tri
	level    string // the apps' registry-type: interface or service
	service  string // the mesh service: the interface, or APP:PROTOCOL
	viewDir  string // what A's consumer reads: the providers or the app's instances
	iface    string // the interface the apps serve and call (application level: one per run)
	// localMetadata: the provider serves its metadata itself (its
	// MetadataService) instead of writing it to the metadata report.
	localMetadata bool
	a, b          *host
	reg           registry.Registry
	provider      *testbed.Proc
	consumer      *dubboConsumer
	appPort       int
	appAddr       string // where the provider listens, on B
	ingress       string // B's ingress for the service, as registered
	egress        string // A's egress for it
	// view is the providers directory as A's front end answers it, read
	// by a go-zookeeper client of our own beside the consumer's.
	view *timeline[[]string]
	// regs is the service in the registry, read by a client of our own.
	regs *timeline[[]registry.Endpoint]
	// failedInPhases adds the phases' failed calls up, for the total.
	failedInPhases int
	// mark is where the last stretch of calls through the mesh began:
	// the consumer's count and both sidecars' stats then.
	mark meshMark
}

func frontEndArgs(ip string) []string {
	return []string{"--zookeeper-listen", net.JoinHostPort(ip, strconv.Itoa(testbed.ZooKeeperPort))}
}

func startDubboMesh(t *testing.T, be *backend) *dubboMesh {
	t.Helper()
	return startDubboMeshOn(t, be, "dubbo")
}

// startDubboMeshOn starts the pair with both apps on protocol (dubbo or
// tri); the figures name the protocol when it is not dubbo.
func startDubboMeshOn(t *testing.T, be *backend, protocol string) *dubboMesh {
	t.Helper()
	return startDubboMeshAt(t, be, protocol, "interface")
}

// startDubboMeshAt starts the pair on protocol with registry-type level:
// interface (Dubbo 2's providers) or service (Dubbo 3's application-level
// instances, metadata in the remote report; "service/local": in the
// provider's own MetadataService).
func startDubboMeshAt(t *testing.T, be *backend, protocol, level string) *dubboMesh {
	t.Helper()
	dir := dubbogoBin(t)
	level, metadata, _ := strings.Cut(level, "/")
	m := &dubboMesh{be: be, upstream: path.Base(t.Name()), protocol: protocol, level: level,
		service: dubboService, viewDir: dubboProviders, iface: dubboService}
	appArgs := []string{"--registry-type", level}
	var provArgs []string
	if level == "service" {
		app := unique("greeter-app-")
		m.service, m.viewDir = dubboapp.ServiceName(app, protocol), dubboapp.Dir(app)
		// An interface of its own: its mapping in the registry lists every
		// app that ever served it, and dubbo-go chases the instances of
		// earlier runs' apps (their sessions lingering) before this one's.
		m.iface = "org.detour.Greeter" + strings.TrimPrefix(app, "greeter-app-")
		appArgs = append(appArgs, "--interface", m.iface)
		provArgs = []string{"--app", app, "--metadata", "remote"}
		m.upstream = "application-level, " + m.upstream
		if metadata == "local" {
			m.localMetadata = true
			provArgs = []string{"--app", app, "--metadata", "local"} // and its port, once B is up
			m.upstream = "local metadata, " + m.upstream
		}
	}
	if protocol != "dubbo" {
		m.upstream = protocol + ", " + m.upstream
	}
	m.a = be.host(t, ipA, "", frontEndArgs(ipA)...)
	m.b = be.host(t, ipB, "", frontEndArgs(ipB)...)
	m.a.startSidecar()
	m.b.startSidecar()
	m.a.waitSidecar("up")
	m.b.waitSidecar("up")
	m.reg = be.reader(t)
	m.regs = watchRegistry(t, m.reg, m.service)

	m.appPort = freePort(t, m.b.IP)
	if m.localMetadata {
		provArgs = append(provArgs, "--metadata-port", strconv.Itoa(freePort(t, m.b.IP)))
	}
	m.appAddr = net.JoinHostPort(m.b.IP, strconv.Itoa(m.appPort))
	started := time.Now()
	m.provider = appIn(t, dir, "dubbo-provider", append(append([]string{"--host", m.b.IP, "--port", strconv.Itoa(m.appPort),
		"--registry", "zookeeper://" + m.b.ZooKeeperAddr(), "--protocol", protocol, "--name", "provider-B"}, appArgs...), provArgs...)...)
	eps, at := m.regs.wait(t, started, 60*time.Second, "B's ingress registered for the dubbo-go provider", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr != m.appAddr && eps[0].Metadata["detour.mesh"] == "true"
	})
	m.ingress = eps[0].Addr
	t.Logf("figure: dubbo-go (%s): provider started -> B's ingress %s in the registry in %v", m.upstream, m.ingress, at.Sub(started).Round(time.Millisecond))
	ans := m.a.waitAnswer(m.service, "mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	m.egress = ans.Endpoints[0].Addr
	if len(ans.Fallback) != 1 || ans.Fallback[0].Addr != m.appAddr {
		t.Errorf("A's fallback = %v, want the provider's own %s", ans.Fallback, m.appAddr)
	}
	m.view = watchChildren(t, m.a.ZooKeeperAddr(), m.viewDir)
	if level == "service" {
		m.shareMetadata(t)
	}

	// The first stretch through the mesh starts with the consumer: its
	// count starts at its first answered call (--wait).
	m.mark = meshMark{a: sidecarStats(t, m.a), b: sidecarStats(t, m.b)}
	started = time.Now()
	p := appIn(t, dir, "dubbo-consumer", append([]string{"--registry", "zookeeper://" + m.a.ZooKeeperAddr(),
		"--protocol", protocol, "--rate", strconv.Itoa(dubboRate), "--wait", "30s"}, appArgs...)...)
	m.consumer = &dubboConsumer{Proc: p, rate: dubboRate}
	m.consumer.waitOK(t, 1, "the consumer's first counted call")
	t.Logf("figure: dubbo-go (%s): consumer started -> calls counted in %v", m.upstream, time.Since(started).Round(time.Millisecond))
	return m
}

// providerAddr is the host:port of a provider node name.
func providerAddr(name string) string {
	u, err := dubbourl.ParseNodeName(name)
	if err != nil {
		return "unparsable: " + err.Error()
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
}

// only reports whether kids is one provider (one instance) at addr.
func (m *dubboMesh) only(addr string) func([]string) bool {
	return func(kids []string) bool { return len(kids) == 1 && m.nodeAddr(kids[0]) == addr }
}

// nodeAddr is where a node of the view says to dial: a provider URL's
// host:port, or an instance node's name (the front end names each
// instance by the address it shows).
func (m *dubboMesh) nodeAddr(name string) string {
	if m.level == "service" {
		return name
	}
	return providerAddr(name)
}

// checkTakeover: the registry holds B's ingress with the app's own
// parameters; A's front end answers A's egress; the calls cross both
// sidecars.
func (m *dubboMesh) checkTakeover(t *testing.T) {
	t.Helper()
	if m.level == "service" {
		m.checkAppTakeover(t)
		return
	}
	eps := registered(t, m.reg, dubboService)
	if len(eps) != 1 {
		t.Fatalf("registry holds %v", eps)
	}
	ep := eps[0]
	if host, _, _ := net.SplitHostPort(ep.Addr); ep.Addr == m.appAddr || host != m.b.IP {
		t.Errorf("registered %s, want B's ingress (not the app's %s)", ep.Addr, m.appAddr)
	}
	for k, want := range map[string]string{
		"detour.port": strconv.Itoa(m.appPort), "detour.protocol": m.protocol,
		"serialization": "hessian2", "application": "dubbo-provider", "release": "dubbo-golang-3.3.1",
	} {
		if got := ep.Metadata[k]; got != want {
			t.Errorf("registered metadata %s = %q, want %q (all: %v)", k, got, want, ep.Metadata)
		}
	}
	if !strings.Contains(ep.Metadata["methods"], "SayHello") {
		t.Errorf("registered methods = %q", ep.Metadata["methods"])
	}
	if m.be.zkAddr != "" {
		m.checkZooKeeperNode(t)
	}

	kids, _ := m.view.wait(t, time.Time{}, 10*time.Second, "A's front end answers A's egress", m.only(m.egress))
	u, err := dubbourl.ParseNodeName(kids[0])
	if err != nil {
		t.Fatal(err)
	}
	if u.Protocol != m.protocol || u.Path != dubboService || u.Params["serialization"] != "hessian2" || u.Params["application"] != "dubbo-provider" || u.Params["interface"] != dubboService {
		t.Errorf("A's consumers read %+v", u)
	}
	if r := m.consumer.snapshot(t); r.Failed != 0 {
		t.Errorf("%d calls failed before anything failed", r.Failed)
	}
	m.steady(t, "through both sidecars", viaMesh, true)
}

// checkZooKeeperNode reads the provider node the agent wrote into the
// real ZooKeeper: the app's own URL, scheme and parameters, at B's
// ingress.
func (m *dubboMesh) checkZooKeeperNode(t *testing.T) {
	t.Helper()
	conn, _, err := zk.Connect([]string{m.be.zkAddr}, 10*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dir := m.be.zkRoot + "/" + dubboService + "/providers"
	kids, _, err := conn.Children(dir)
	if err != nil || len(kids) != 1 {
		t.Fatalf("%s in ZooKeeper: %v, %v", dir, kids, err)
	}
	u, err := dubbourl.ParseNodeName(kids[0])
	if err != nil {
		t.Fatal(err)
	}
	got := net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
	if u.Protocol != m.protocol || got != m.ingress || u.Path != dubboService {
		t.Errorf("ZooKeeper holds %s://%s/%s, want %s://%s/%s", u.Protocol, got, u.Path, m.protocol, m.ingress, dubboService)
	}
	for k, want := range map[string]string{
		"serialization": "hessian2", "application": "dubbo-provider", "interface": dubboService, "side": "provider",
		"release": "dubbo-golang-3.3.1", "detour.port": strconv.Itoa(m.appPort),
	} {
		if got := u.Params[k]; got != want {
			t.Errorf("ZooKeeper's provider URL: %s = %q, want %q", k, got, want)
		}
	}
	t.Logf("ZooKeeper holds %s://%s/%s?serialization=%s&weight=%s&... (the app wrote weight=0)", u.Protocol, got, u.Path, u.Params["serialization"], u.Params["weight"])
}

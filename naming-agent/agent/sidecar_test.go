package agent

import (
	"strconv"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/config"
)

func statusWithApp(service, target string, healthy bool) *sidecarpb.Status {
	return &sidecarpb.Status{Apps: []*sidecarpb.AppHealth{{Service: service, Target: target, Healthy: healthy}}}
}

// TestSidecarDecision walks the state machine through its rules, one
// event at a time.
func TestSidecarDecision(t *testing.T) {
	cfg := config.Sidecar{ReadyThreshold: 3, DownThreshold: 2, StreamGrace: time.Second}
	t0 := time.Unix(1000, 0)
	type step struct {
		event  string // connect, ack, ok, fail, break, tick+N (seconds)
		wantUp bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"up needs stream, ack and three good probes", []step{
			{"ok", false}, {"ok", false}, {"ok", false}, // probes alone: no
			{"connect", false}, {"ack", true},
		}},
		{"flapping probes do not bring it up", []step{
			{"connect", false}, {"ack", false}, {"ok", false}, {"ok", false}, {"fail", false},
			{"ok", false}, {"ok", false}, {"fail", false}, {"ok", false}, {"ok", false}, {"ok", true},
		}},
		{"killed: stream breaks, next probe fails, down at once", []step{
			{"connect", false}, {"ack", false}, {"ok", false}, {"ok", false}, {"ok", true},
			{"break", true}, {"fail", false},
		}},
		{"stream broken but ready: up until the grace ends", []step{
			{"connect", false}, {"ack", false}, {"ok", false}, {"ok", false}, {"ok", true},
			{"break", true}, {"ok", true}, {"tick+0.5", true}, {"ok", true}, {"tick+1", false},
		}},
		{"reconnect within the grace keeps it up", []step{
			{"connect", false}, {"ack", false}, {"ok", false}, {"ok", false}, {"ok", true},
			{"break", true}, {"connect", true}, {"tick+5", true},
		}},
		{"hung: stream up, probes fail DownThreshold times", []step{
			{"connect", false}, {"ack", false}, {"ok", false}, {"ok", false}, {"ok", true},
			{"fail", true}, {"fail", false},
		}},
		{"after a kill, the new stream needs its own ack", []step{
			{"connect", false}, {"ack", false}, {"ok", false}, {"ok", false}, {"ok", true},
			{"break", true}, {"fail", false}, {"connect", false}, {"ok", false}, {"ok", false}, {"ok", false}, {"ack", true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSidecarState("127.0.0.1:1", t0)
			now := t0
			for i, st := range tc.steps {
				switch ev := st.event; {
				case ev == "connect":
					s.connected, s.ackedInSession = true, false
				case ev == "ack":
					s.ackedInSession = true
					s.setAcked(&sidecarpb.Snapshot{Version: 1})
				case ev == "ok":
					s.probed(true)
				case ev == "fail":
					s.probed(false)
				case ev == "break":
					s.connected, s.ackedInSession, s.disconnectedAt = false, false, now
				case len(ev) > 5 && ev[:5] == "tick+":
					secs, _ := strconv.ParseFloat(ev[5:], 64)
					now = s.disconnectedAt.Add(time.Duration(secs * float64(time.Second)))
				}
				s.decide(cfg, now, func(bool) {})
				if s.up != st.wantUp {
					t.Fatalf("step %d (%s): up = %v, want %v", i, st.event, s.up, st.wantUp)
				}
			}
		})
	}
}

func TestNackKeepsMeshOff(t *testing.T) {
	e := newEnv(t, nil)
	e.remote("svc")
	e.answer("svc", "known", func(a Answer) bool { return len(a.Endpoints) == 2 })
	e.ready.Store(true)
	sess, err := e.a.SidecarConnect(&sidecarpb.Hello{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	snap, err := sess.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sess.Nack(snap.Version, "bind: address in use")
	registryWaitStatus(t, e, func() bool { return e.a.Status().Sidecar.LastNack != "" })
	if st := e.a.Status().Sidecar; st.State != "down" {
		t.Errorf("sidecar up without any ack: %+v", st)
	}
	sess.Ack(snap.Version)
	e.waitSidecar(true)
	e.answer("svc", "mesh after ack", func(a Answer) bool { return a.Mesh })
}

func registryWaitStatus(t *testing.T, e *env, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		<-time.After(time.Millisecond)
	}
}

func TestNewerStreamReplacesOlder(t *testing.T) {
	e := newEnv(t, nil)
	old := e.startSidecar()
	e.waitSidecar(true)
	newer := e.startSidecar()
	<-old.done       // its Next returned ErrReplaced
	old.sess.Close() // a no-op: the newer stream is the sidecar now
	e.waitSidecar(true)
	if !e.a.Status().Sidecar.Connected {
		t.Error("closing the replaced stream disconnected the sidecar")
	}
	e.kill(newer)
	e.waitSidecar(false)
}

func TestSnapshotIsComplete(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Services = map[string]config.Service{"web": {Protocol: "http"}}
	})
	e.remote("web")
	e.answer("web", "known", func(a Answer) bool { return len(a.Endpoints) == 2 })
	if _, err := e.a.Publish(PublishRequest{Service: "api", Port: 8081, Protocol: "grpc", Health: HealthSpec{Type: "grpc"}}); err != nil {
		t.Fatal(err)
	}
	sc := e.startSidecar()
	e.waitSidecar(true)
	snap := sc.snapshot()
	if snap.HostIp != "127.0.0.1" || snap.HealthListen != "127.0.0.1:7703" {
		t.Errorf("host fields: %v %v", snap.HostIp, snap.HealthListen)
	}
	if len(snap.Egress) != 1 || snap.Egress[0].Service != "web" || snap.Egress[0].Protocol != sidecarpb.Protocol_PROTOCOL_HTTP {
		t.Errorf("egress = %v", snap.Egress)
	}
	if len(snap.Ingress) != 1 || snap.Ingress[0].Target != "127.0.0.1:8081" || snap.Ingress[0].Protocol != sidecarpb.Protocol_PROTOCOL_GRPC {
		t.Errorf("ingress = %v", snap.Ingress)
	}
	if len(snap.AppChecks) != 1 || snap.AppChecks[0].Kind != "grpc" {
		t.Errorf("app checks = %v", snap.AppChecks)
	}
	c := snap.Clusters[0]
	if c.Outlier.ConsecutiveFailures != 5 || c.Outlier.BaseEjectionTime.AsDuration() != 30*time.Second || c.HealthCheck.UnhealthyThreshold != 3 || c.Retries != 2 {
		t.Errorf("cluster settings = %v", c)
	}
	// Every change makes a new, higher version.
	v := snap.Version
	if err := e.a.SetMesh("web", false); err != nil {
		t.Fatal(err)
	}
	registryWaitStatus(t, e, func() bool { s := sc.snapshot(); return s.Version > v && len(s.Egress) == 0 })
}

// Several hosts on one machine: app_ip sends the sidecar to the host's own
// loopback address for its apps, in the ingress target and the app check.
func TestAppIPReachesSnapshot(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Ports.AppIP = "127.0.0.3" })
	if _, err := e.a.Publish(PublishRequest{Service: "api", Port: 8081, Protocol: "tcp", Health: HealthSpec{Type: "tcp"}}); err != nil {
		t.Fatal(err)
	}
	sc := e.startSidecar()
	e.waitSidecar(true)
	snap := sc.snapshot()
	if len(snap.Ingress) != 1 || snap.Ingress[0].Target != "127.0.0.3:8081" {
		t.Errorf("ingress = %v, want target 127.0.0.3:8081", snap.Ingress)
	}
	if len(snap.AppChecks) != 1 || snap.AppChecks[0].Target != "127.0.0.3:8081" {
		t.Errorf("app checks = %v, want target 127.0.0.3:8081", snap.AppChecks)
	}
}

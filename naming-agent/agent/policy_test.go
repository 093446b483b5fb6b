package agent

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/naming-agent/frontend"
)

// TestPublishPolicyRefusesOwnPorts: before the policy, a local user could
// publish the sidecar's admin (pprof) and reach it from the network
// through the ingress. Each of the agent's and sidecar's own ports, and
// the ingress and egress ranges, is refused with ErrForbidden, over the
// API's path and a front end's alike, and nothing changes.
func TestPublishPolicyRefusesOwnPorts(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Frontends.ZooKeeper.Listen = "127.0.0.1:7704"
		c.Frontends.Nacos.Listen = "127.0.0.1:8848"
	})
	refused := []struct {
		port int
		want string
	}{
		{7700, "http_listen"}, {7701, "grpc_listen"}, {7702, "sidecar.admin"}, {7703, "ports.health"},
		{2379, "client_listen"}, {2380, "peer_listen"}, {7704, "frontends.zookeeper"},
		{8848, "frontends.nacos"}, {9848, "gRPC"},
	}
	// The ports the sidecar listens on: an ingress and an egress port.
	pub, err := e.a.Publish(PublishRequest{Service: "app", Port: 8080})
	if err != nil || pub.IngressPort == 0 {
		t.Fatalf("publish: %+v, %v", pub, err)
	}
	e.remote("greeter")
	e.answer("greeter", "answer", func(a Answer) bool { return len(a.Endpoints) == 2 })
	egress := e.a.Status().Subscriptions[0].EgressPort
	refused = append(refused, struct {
		port int
		want string
	}{pub.IngressPort, "ingress port of service \"app\""}, struct {
		port int
		want string
	}{egress, "egress port of service \"greeter\""})
	for _, r := range refused {
		_, err := e.a.Publish(PublishRequest{Service: "evil", Port: r.port})
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("publish port %d: %v, want ErrForbidden naming %s", r.port, err, r.want)
		}
		err = e.a.Frontend().Publish(frontend.Publication{Service: "evil", Port: r.port, Owner: "zookeeper/0x1"})
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("front end publish port %d: %v, want ErrForbidden", r.port, err)
		}
	}
	if n := len(e.a.Status().Publications); n != 1 {
		t.Fatalf("%d publications after refused ones, want 1", n)
	}
	// Dubbo's default port lies in the default ingress range: allowed.
	if _, err := e.a.Publish(PublishRequest{Service: "dubbo", Port: 20880}); err != nil {
		t.Fatalf("an app's port: %v", err)
	}
}

func TestPublishPolicyAllowedPorts(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.API.AllowedPorts = []config.PortRange{{From: 8080, To: 8089}}
	})
	if _, err := e.a.Publish(PublishRequest{Service: "in", Port: 8085}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{5432, 8090, 7702} {
		if _, err := e.a.Publish(PublishRequest{Service: "out", Port: p}); !errors.Is(err, ErrForbidden) {
			t.Errorf("port %d outside api.allowed_ports: %v", p, err)
		}
	}
}

// TestSavedPublicationRefused: a publication of a reserved port saved by
// an earlier run (before the policy) is not published again.
func TestSavedPublicationRefused(t *testing.T) {
	dir := t.TempDir()
	saved := `{"publications":[{"service":"admin","port":7702,"protocol":"tcp","health":{"type":"tcp"}},` +
		`{"service":"app","port":8080,"protocol":"tcp","health":{"type":"tcp"}}]}`
	if err := os.WriteFile(publicationsPath(dir), []byte(saved), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *config.Config) { c.DataDir = dir })
	pubs := e.a.Status().Publications
	if len(pubs) != 1 || pubs[0].Service != "app" {
		t.Fatalf("publications = %+v, want only app", pubs)
	}
}

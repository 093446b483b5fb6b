package agent

import (
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

func TestPublishRewrite(t *testing.T) {
	e := newEnv(t, nil)
	pub, err := e.a.Publish(PublishRequest{Service: "greeter", Port: 8080, Protocol: "grpc", Metadata: map[string]string{"zone": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if pub.IngressPort != e.cfg.Ports.Ingress.From {
		t.Fatalf("ingress port = %d, want %d", pub.IngressPort, e.cfg.Ports.Ingress.From)
	}
	ingress := "127.0.0.1:" + strconv.Itoa(pub.IngressPort)
	real := map[string]string{"zone": "a", MetaMesh: "false", MetaPort: "8080", MetaProtocol: "grpc"}
	mesh := map[string]string{"zone": "a", MetaMesh: "true", MetaPort: "8080", MetaProtocol: "grpc", MetaHealthPort: "7703"}

	// No sidecar yet: the app's own port, mesh marked off.
	e.registered("greeter", "real registration", one("127.0.0.1:8080", real))

	// Sidecar up and its snapshot acknowledged: the ingress.
	sc := e.startSidecar()
	e.registered("greeter", "ingress registration", one(ingress, mesh))
	if st := e.a.Status().Publications[0]; !st.Mesh || st.RegisteredAddr != ingress {
		t.Errorf("status publication = %+v", st)
	}

	// Sidecar killed: back to the real port.
	e.kill(sc)
	e.registered("greeter", "real registration after kill", one("127.0.0.1:8080", real))

	// Unpublish: gone.
	if err := e.a.Unpublish("greeter", 8080); err != nil {
		t.Fatal(err)
	}
	e.registered("greeter", "nothing after unpublish", none)
}

func TestPublishErrors(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.a.Publish(PublishRequest{Service: "s", Port: 9000}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  PublishRequest
		want error
	}{
		{"empty service", PublishRequest{Port: 1}, ErrInvalid},
		{"bad service", PublishRequest{Service: "a/b", Port: 1}, ErrInvalid},
		{"port 0", PublishRequest{Service: "x", Port: 0}, ErrInvalid},
		{"port too big", PublishRequest{Service: "x", Port: 65536}, ErrInvalid},
		{"protocol", PublishRequest{Service: "x", Port: 1, Protocol: "udp"}, ErrInvalid},
		{"health type", PublishRequest{Service: "x", Port: 1, Health: HealthSpec{Type: "ping"}}, ErrInvalid},
		{"http health without path", PublishRequest{Service: "x", Port: 1, Health: HealthSpec{Type: "http"}}, ErrInvalid},
		{"path on tcp", PublishRequest{Service: "x", Port: 1, Health: HealthSpec{Path: "/h"}}, ErrInvalid},
		{"reserved metadata", PublishRequest{Service: "x", Port: 1, Metadata: map[string]string{"detour.port": "1"}}, ErrInvalid},
		{"bad metadata key", PublishRequest{Service: "x", Port: 1, Metadata: map[string]string{"a b": "1"}}, ErrInvalid},
		{"weight key", PublishRequest{Service: "x", Port: 1, Metadata: map[string]string{"weight": "1"}}, ErrInvalid},
		{"other port", PublishRequest{Service: "s", Port: 9001}, ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.a.Publish(tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("Publish = %v, want %v", err, tc.want)
			}
		})
	}
	if n := len(e.a.Status().Publications); n != 1 {
		t.Fatalf("bad publishes changed state: %d publications", n)
	}
	if err := e.a.Unpublish("never", 1); !errors.Is(err, ErrNotPublished) {
		t.Errorf("Unpublish(never) = %v", err)
	}
	if err := e.a.Unpublish("s", 9001); !errors.Is(err, ErrNotPublished) {
		t.Errorf("Unpublish(wrong port) = %v", err)
	}
	if err := e.a.Unpublish("", 9000); !errors.Is(err, ErrInvalid) {
		t.Errorf("Unpublish(empty) = %v", err)
	}
	// The same publication again changes nothing; another protocol is a
	// conflict (the two hosts would disagree) unless asked as an update.
	if _, err := e.a.Publish(PublishRequest{Service: "s", Port: 9000}); err != nil {
		t.Errorf("identical re-publish = %v", err)
	}
	if _, err := e.a.Publish(PublishRequest{Service: "s", Port: 9000, Protocol: "http"}); !errors.Is(err, ErrConflict) {
		t.Errorf("re-publish with another protocol = %v, want a conflict", err)
	}
	if got := e.a.Status().Publications[0].Protocol; got != "tcp" {
		t.Errorf("a refused re-publish changed the protocol to %q", got)
	}
	pub, err := e.a.Publish(PublishRequest{Service: "s", Port: 9000, Protocol: "http", Update: true})
	if err != nil || pub.Protocol != "http" {
		t.Errorf("update = %+v, %v", pub, err)
	}
}

// TestAppDeath: the agent's own check withdraws a dead app and restores
// it when it listens again.
func TestAppDeath(t *testing.T) {
	e := newEnv(t, nil)
	e.realDial.Store(true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if _, err := e.a.Publish(PublishRequest{Service: "app", Port: port}); err != nil {
		t.Fatal(err)
	}
	e.registered("app", "registered", func(eps []registry.Endpoint) bool { return len(eps) == 1 && eps[0].Addr == addr })
	l.Close()
	e.registered("app", "withdrawn after the app died", none)
	if p := e.a.Status().Publications[0]; p.Healthy || p.HealthSource != "agent" {
		t.Errorf("publication = %+v", p)
	}
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %d taken again before the test could rebind it: %v", port, err)
	}
	defer l2.Close()
	e.registered("app", "restored after the app came back", func(eps []registry.Endpoint) bool { return len(eps) == 1 && eps[0].Addr == addr })
}

// TestAppHealthFromSidecar: while the sidecar is up its stage-1 verdict
// decides.
func TestAppHealthFromSidecar(t *testing.T) {
	e := newEnv(t, nil)
	e.realDial.Store(true)
	l, err := net.Listen("tcp", "127.0.0.1:0") // the agent's own check would pass
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if _, err := e.a.Publish(PublishRequest{Service: "app", Port: port}); err != nil {
		t.Fatal(err)
	}
	sc := e.startSidecar()
	e.waitSidecar(true)
	target := "127.0.0.1:" + strconv.Itoa(port)
	sc.sess.Status(statusWithApp("app", target, false))
	e.registered("app", "withdrawn on the sidecar's verdict", none)
	if p := e.a.Status().Publications[0]; p.HealthSource != "sidecar" {
		t.Errorf("health source = %q", p.HealthSource)
	}
	sc.sess.Status(statusWithApp("app", target, true))
	e.registered("app", "restored on the sidecar's verdict", func(eps []registry.Endpoint) bool { return len(eps) == 1 })
}

package dataplane

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// TestListenerLimits: the sidecar's config reaches its listeners: an
// HTTP ingress closes a connection that sends no head within
// head_timeout (counted head_timeout), and refuses the connection past
// listener_max_connections (counted conn_limit).
func TestListenerLimits(t *testing.T) {
	const ip = "127.0.0.3"
	cfg := Default()
	cfg.HeadTimeout = 200 * time.Millisecond
	cfg.ListenerMaxConnections = 2
	d := newDP(t, cfg)
	app := httpApp(t, tagHandler("b"), "127.0.0.1")
	ingress := hp(ip, freePort(t, ip))
	snap := &sidecarpb.Snapshot{Version: 1, HostIp: ip, Ingress: []*sidecarpb.IngressListener{
		{Service: "web", Listen: ingress, Target: hp("127.0.0.1", app), Protocol: sidecarpb.Protocol_PROTOCOL_HTTP},
	}}
	if err := d.Apply(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ingress)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	slow1, slow2 := dial(), dial()
	eventually(t, "two connections open", func() bool { return listenerView(t, d, "ingress").ConnsActive == 2 })
	third := dial()
	if n, err := third.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("third connection: %d, %v; want closed", n, err)
	}
	for _, c := range []net.Conn{slow1, slow2} {
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("a silent connection: %d, %v; want closed after head_timeout", n, err)
		}
	}
	eventually(t, "counters", func() bool {
		f := listenerView(t, d, "ingress").Failures
		return f["conn_limit"] == 1 && f["head_timeout"] == 2
	})
}

func TestConfigValidateLimits(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.HeadTimeout = -1 },
		func(c *Config) { c.UpstreamIdleTimeout = -1 },
		func(c *Config) { c.ListenerMaxConnections = -1 },
	} {
		c := Default()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid", c)
		}
	}
	if d := Default(); d.HeadTimeout <= 0 || d.HeadTimeout > 60*time.Second || d.ListenerMaxConnections <= 0 {
		t.Errorf("defaults: %+v", d)
	}
}

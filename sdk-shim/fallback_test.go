package shim_test

import (
	"context"
	"testing"

	shim "github.com/detourmesh/detour/sdk-shim"
)

// TestGRPCInstantFallback: under steady load the stand-in sidecar's data
// plane dies. New calls go to the real endpoint at once, whether or not
// the agent has noticed; only calls caught in flight may fail. When the
// agent says mesh again, calls go back through the sidecar. With the
// app's retry policy on UNAVAILABLE, not even those fail.
func TestGRPCInstantFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		notices bool
		sc      string
	}{
		{"agent unaware", false, appServiceConfig},
		{"agent notices", true, appServiceConfig},
		{"round_robin", false, `{"loadBalancingConfig":[{"round_robin":{}}],` + appServiceConfig[1:]},
		// Without a retry policy the calls caught in flight fail.
		{"no retry policy", false, ""},
	} {
		notices := tc.notices
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.client()
			svc := uniqueService(t)
			g := startGreeter(t, host(3))
			e.register(svc, g.addr)
			e.sidecarUp(svc)
			h := dialGreeterSC(t, c, svc, tc.sc)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			updates, err := c.Watch(ctx, svc)
			if err != nil {
				t.Fatal(err)
			}
			next(t, updates, "mesh answer", func(u shim.Update) bool { return u.Answer.Mesh })
			eventually(t, "calls through the sidecar", func() bool { return check(ctx, h) == nil && e.sidecar.accepted.Load() > 0 })

			killUnderLoad(t, e, svc, notices, func(ctx context.Context) error { return check(ctx, h) })
			u := next(t, updates, "the switch", func(u shim.Update) bool { return !u.Answer.Mesh })
			if u.Answer.Endpoints[0] != g.addr || u.Answer.Governance.Mesh {
				t.Errorf("after the switch: %+v", u.Answer)
			}

			t.Log("the agent says mesh again: back through the sidecar")
			through := e.sidecar.accepted.Load()
			if !notices {
				e.sidecarDown(svc)
			}
			e.sidecarUp(svc)
			next(t, updates, "mesh again", func(u shim.Update) bool { return u.Answer.Mesh })
			eventually(t, "calls through the sidecar again", func() bool { return check(ctx, h) == nil && e.sidecar.accepted.Load() > through })
		})
	}
}

package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/api"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCommands(t *testing.T) {
	srv := registrytest.NewFakeServer()
	cli, other := srv.Client(nil), srv.Client(nil)
	defer cli.Close()
	defer other.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	a, err := agent.New(cfg, cli, agent.WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ts := httptest.NewServer(api.HTTPHandler(a, cfg.API, zap.NewNop()))
	defer ts.Close()
	if _, err := a.Publish(agent.PublishRequest{Service: "greeter", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	other.Register(context.Background(), registry.Endpoint{Service: "remote", Addr: "10.0.0.2:9000"})

	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb, ts.URL, ts.Client())
		return code, out.String(), errb.String()
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status"}, 0, "sidecar:       down"},
		{[]string{"resolve", "remote"}, 0, "10.0.0.2:9000"},
		{[]string{"--json", "resolve", "remote"}, 0, `"fallback": [`},
		{[]string{"mesh", "disable", "remote"}, 0, "remote is now out of the mesh"},
		{[]string{"status"}, 0, "mesh off:      remote"},
		{[]string{"mesh", "enable", "remote"}, 0, "remote is now in the mesh"},
		{[]string{"list"}, 0, "greeter"},
		{[]string{"sidecar"}, 0, "state:     down"},
		{[]string{"resolve", "bad/name"}, 1, "400 Bad Request"},
		{[]string{"mesh", "toggle", "x"}, 2, "usage"},
		{[]string{}, 2, "usage"},
	}
	for _, tc := range tests {
		code, out, errOut := ctl(tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("detourctl %v: exit %d\n%s%s\nwant exit %d with %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	if code, _, errOut := func() (int, string, string) {
		var out, errb bytes.Buffer
		c := run([]string{"--agent", "127.0.0.1:1", "status"}, &out, &errb, "", ts.Client())
		return c, out.String(), errb.String()
	}(); code != 1 || !strings.Contains(errOut, "agent at http://127.0.0.1:1") {
		t.Errorf("unreachable agent: exit %d %q", code, errOut)
	}
}

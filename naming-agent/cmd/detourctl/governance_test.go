package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/api"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestRoutesAndLimitsCommands(t *testing.T) {
	srv := registrytest.NewFakeServer()
	cli := srv.Client(nil)
	defer cli.Close()
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"listeners":[{"listen":"127.0.0.1:20000","kind":"ingress","service":"web","limit":{"admitted":90,"rate_limited":10}}],
			"clusters":[{"service":"web","routes":{"rules":[{"name":"testers","matched":7}],"unmatched":100,"fallback":2}}]}`))
	}))
	defer admin.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Sidecar.Admin = strings.TrimPrefix(admin.URL, "http://")
	a, err := agent.New(cfg, cli, agent.WithPortProbe(func(string, int) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ts := httptest.NewServer(api.HTTPHandler(a, cfg.API, zap.NewNop()))
	defer ts.Close()
	if _, err := a.Publish(agent.PublishRequest{Service: "web", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"subsets":[{"name":"v1","labels":{"version":"1"}},{"name":"v2","labels":{"version":"2"}}],
		"split":[{"subset":"v1","weight":95},{"subset":"v2","weight":5}]}`), 0o600)
	os.WriteFile(bad, []byte(`{"subsets":[{"name":"v1","labels":{"version":"1"}}],"split":[{"subset":"v1","weight":50}]}`), 0o600)
	stdin = strings.NewReader(`{"rps":100,"burst":20}`)
	defer func() { stdin = os.Stdin }()
	runSteps(t, ts.URL, ts.Client(), []step{
		{args: []string{"routes", "set", "web", good}, stdout: "routes of web set"},
		{args: []string{"routes", "set", "web", bad}, code: 1, stderr: "routes.split: weights sum to 50, not 100"},
		{args: []string{"routes", "show", "web"}, stdout: `"weight": 5`},
		{args: []string{"routes", "show", "web"}, stdout: "rule 0 testers: matched 7"},
		{args: []string{"routes", "show", "web"}, stdout: "unmatched 100, fallback 2"},
		{args: []string{"routes", "clear", "web"}, stdout: "routes of web cleared"},
		{args: []string{"limits", "set", "web", "-"}, stdout: "limits of web set"},
		{args: []string{"limits", "show", "web"}, stdout: `"rps": 100`},
		{args: []string{"limits", "show", "web"}, stdout: "admitted 90, rate limited 10"},
		{args: []string{"routes", "set", "web"}, code: 2, stderr: "want set SERVICE FILE"},
		{args: []string{"routes", "drop", "web"}, code: 2, stderr: "want set, show or clear"},
		{args: []string{"routes", "set", "nobody", good}, code: 1, stderr: "neither published nor subscribed"},
	})
}

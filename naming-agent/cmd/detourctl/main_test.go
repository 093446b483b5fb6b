package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
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

// step is one detourctl run and what it must print.
type step struct {
	args      []string
	code      int
	stdout    string // must contain
	stderr    string // must contain
	notStderr string // must not contain, if set
}

// runSteps runs each step against the agent at url (as $DETOUR_AGENT).
func runSteps(t *testing.T, url string, client *http.Client, steps []step) {
	t.Helper()
	for _, s := range steps {
		var out, errb bytes.Buffer
		code := run(s.args, &out, &errb, url, client)
		if code != s.code || !strings.Contains(out.String(), s.stdout) || !strings.Contains(errb.String(), s.stderr) ||
			(s.notStderr != "" && strings.Contains(errb.String(), s.notStderr)) {
			t.Errorf("detourctl %q: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q and without %q",
				s.args, code, out.String(), errb.String(), s.code, s.stdout, s.stderr, s.notStderr)
		}
	}
}

// TestCommands runs detourctl against the real agent (Fake registry).
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

	const newSub = "(new subscription: this agent now watches"
	runSteps(t, ts.URL, ts.Client(), []step{
		{args: []string{"status"}, stdout: "sidecar:       down"},
		{args: []string{"resolve", "remote"}, stdout: "10.0.0.2:9000", stderr: newSub + " remote and holds an egress port for it ("},
		{args: []string{"resolve", "remote"}, stdout: "10.0.0.2:9000", notStderr: newSub},
		// Flags after the command.
		{args: []string{"resolve", "remote", "--json"}, stdout: `"fallback": [`},
		{args: []string{"--json", "resolve", "remote"}, stdout: `"fallback": [`},
		{args: []string{"mesh", "disable", "remote"}, stdout: "remote is now out of the mesh"},
		{args: []string{"status"}, stdout: "mesh off:      remote"},
		{args: []string{"mesh", "enable", "remote"}, stdout: "remote is now in the mesh"},
		{args: []string{"list"}, stdout: "greeter"},
		{args: []string{"sidecar"}, stdout: "state:     down"},
		// A typo: said to be unknown (exit 1), and the subscription it
		// created is pointed out, once.
		{args: []string{"resolve", "remtoe"}, code: 1, stdout: "endpoints:  -",
			stderr: newSub + " remtoe and holds an egress port for it ("},
		{args: []string{"resolve", "remtoe"}, code: 1, stderr: "detourctl: nothing is known of remtoe", notStderr: newSub},
		// The agent's error, as it says it.
		{args: []string{"resolve", "bad/name"}, code: 1, stderr: `detourctl: invalid argument: service "bad/name"`, notStderr: newSub},
		{args: []string{"publish", "web", "8081", "--protocol", "http", "--meta", "team=a", "--health", "http:/healthz"}, stdout: "published web: app port 8081, http, health http:/healthz"},
		{args: []string{"list"}, stdout: "web"},
		{args: []string{"publish", "web", "8082"}, code: 1, stderr: "add --update"},
		{args: []string{"unpublish", "web", "8081"}, stdout: "unpublished web (app port 8081)"},
		{args: []string{"unpublish", "web", "8081", "--json"}, code: 1, stderr: "detourctl: "},
	})

	// --agent after the command wins over $DETOUR_AGENT.
	var out, errb bytes.Buffer
	if code := run([]string{"status", "--agent", ts.URL}, &out, &errb, "127.0.0.1:1", ts.Client()); code != 0 || !strings.Contains(out.String(), "registry:") {
		t.Errorf("status --agent URL: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"--agent", "127.0.0.1:1", "status"}, &out, &errb, "", ts.Client()); code != 1 || !strings.Contains(errb.String(), "detourctl: agent at http://127.0.0.1:1") {
		t.Errorf("unreachable agent: exit %d %q", code, errb.String())
	}
}

// noAgent is a client that fails the test if it is used.
func noAgent(t *testing.T) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("request %s %s on a usage error", r.Method, r.URL)
		return nil, io.EOF
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestUsage: a wrong command line exits 2 with the reason and the usage,
// and asks the agent nothing.
func TestUsage(t *testing.T) {
	runSteps(t, "127.0.0.1:1", noAgent(t), []step{
		{args: nil, code: 2, stderr: "detourctl: no command"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"mesh", "toggle", "x"}, code: 2, stderr: "usage"},
		{args: []string{"resolve"}, code: 2, stderr: "resolve takes 1 argument(s), got 0"},
		{args: []string{"status", "extra"}, code: 2, stderr: "status takes 0 argument(s), got 1"},
		{args: []string{"status", "--update"}, code: 2, stderr: "--update is a flag of publish, not of status"},
		{args: []string{"publish", "web", "http"}, code: 2, stderr: `PORT "http" is not a number`},
		{args: []string{"publish", "web", "80", "--meta", "novalue"}, code: 2, stderr: `"novalue": want KEY=VALUE`},
		{args: []string{"publish", "web", "80", "--meta", "a=1", "--meta", "a=2"}, code: 2, stderr: `key "a" given twice`},
		{args: []string{"--nope", "status"}, code: 2, stderr: "flag provided but not defined: -nope"},
		{args: []string{"-h"}, code: 0, stderr: "$DETOUR_AGENT"},
		{args: []string{"--version"}, code: 0, stdout: "detourctl "},
		{args: []string{"status", "--version"}, code: 0, stdout: "detourctl "},
	})
}

// fakeAgent serves the documented answers of the API additions detourctl
// uses before every agent has them (publish's "update",
// DELETE /v1/services/S/subscription), and records the requests.
type fakeAgent struct {
	mu     sync.Mutex
	bodies []map[string]any // publish bodies
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/publish":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		f.mu.Lock()
		f.bodies = append(f.bodies, body)
		f.mu.Unlock()
		if body["update"] != true {
			reply(http.StatusConflict, map[string]string{"error": `conflict: service "web" is published on this host with other settings`})
			return
		}
		reply(http.StatusOK, map[string]any{"service": "web", "port": 8081, "protocol": "grpc", "health": map[string]string{"type": "grpc"},
			"ingress_port": 20001, "registered_addr": "10.0.0.5:20001", "mesh": true, "healthy": true, "health_source": "agent"})
	case r.Method == http.MethodDelete && r.URL.Path == "/v1/services/web/subscription":
		reply(http.StatusOK, map[string]any{"service": "web", "unsubscribed": true})
	case r.Method == http.MethodDelete && r.URL.Path == "/v1/services/gone/subscription":
		reply(http.StatusNotFound, map[string]string{"error": `not subscribed: "gone"`})
	case r.URL.Path == "/v1/status":
		http.Error(w, "upstream gone", http.StatusBadGateway) // not the agent's JSON
	default:
		reply(http.StatusNotFound, map[string]string{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	}
}

// TestNewAPI: publish --update and unsubscribe, against a stand-in that
// answers as the API documents.
func TestNewAPI(t *testing.T) {
	fa := &fakeAgent{}
	ts := httptest.NewServer(fa)
	defer ts.Close()
	runSteps(t, ts.URL, ts.Client(), []step{
		{args: []string{"publish", "web", "8081", "--protocol", "grpc", "--health", "grpc", "--meta", "team=a", "--meta", "zone=x=1"}, code: 1,
			stderr: "detourctl: conflict: service \"web\" is published on this host with other settings\n(web is already published differently on this host: add --update to replace that publication)"},
		{args: []string{"publish", "--update", "web", "8081", "--protocol", "grpc", "--health", "grpc"}, stdout: "registered as 10.0.0.5:20001 (the sidecar's ingress port 20001)"},
		{args: []string{"publish", "web", "8081", "--health", "http:/ready"}, code: 1, stderr: "--update"},
		{args: []string{"unsubscribe", "web"}, stdout: "unsubscribed web: this agent no longer watches it"},
		{args: []string{"unsubscribe", "gone"}, code: 1, stderr: "detourctl: not subscribed: \"gone\"\n"},
		{args: []string{"status"}, code: 1, stderr: "detourctl: agent at " + ts.URL + " answered 502 Bad Gateway"},
	})
	want := []map[string]any{
		{"service": "web", "port": 8081.0, "protocol": "grpc", "health": map[string]any{"type": "grpc"}, "metadata": map[string]any{"team": "a", "zone": "x=1"}},
		{"service": "web", "port": 8081.0, "protocol": "grpc", "health": map[string]any{"type": "grpc"}, "update": true},
		{"service": "web", "port": 8081.0, "health": map[string]any{"type": "http", "path": "/ready"}},
	}
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if !reflect.DeepEqual(fa.bodies, want) {
		t.Errorf("publish bodies:\n%v\nwant\n%v", fa.bodies, want)
	}
}

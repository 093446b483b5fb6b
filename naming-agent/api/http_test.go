package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

func do(t *testing.T, ts *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil && resp.Header.Get("Content-Type") == "application/json" {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, path, b, err)
	}
	return resp.StatusCode, out
}

// fingerprint is the part of the agent's state a bad request must not change.
func fingerprint(a *agent.Agent) string {
	st := a.Status()
	var b strings.Builder
	for _, p := range st.Publications {
		b.WriteString(p.Service + ":" + strconv.Itoa(p.Port) + ":" + p.Protocol + ";")
	}
	for _, s := range st.Subscriptions {
		b.WriteString("sub " + s.Service + ";")
	}
	b.WriteString(strings.Join(st.MeshDisabled, ","))
	return b.String()
}

func TestHTTPBadInput(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewServer(HTTPHandler(e.a, e.cfg.API, zap.NewNop()))
	defer ts.Close()
	if code, body := do(t, ts, "POST", "/v1/publish", `{"service":"kept","port":8080}`); code != 200 {
		t.Fatalf("setup publish: %d %v", code, body)
	}
	if code, body := do(t, ts, "GET", "/v1/resolve?service=known", ""); code != 200 {
		t.Fatalf("setup resolve: %d %v", code, body)
	}
	big := `{"service":"s","port":1,"metadata":{"k":"` + strings.Repeat("x", 5000) + `"}}`
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string // in the error message
	}{
		{"bad json", "POST", "/v1/publish", `{"service":`, 400, "bad JSON"},
		{"not an object", "POST", "/v1/publish", `[1,2]`, 400, "bad JSON"},
		{"empty body", "POST", "/v1/publish", ``, 400, "empty body"},
		{"trailing data", "POST", "/v1/publish", `{"service":"s","port":1} {}`, 400, "trailing data"},
		{"unknown field", "POST", "/v1/publish", `{"service":"s","port":1,"prot":"tcp"}`, 400, `unknown field "prot"`},
		{"missing service", "POST", "/v1/publish", `{"port":1}`, 400, `missing field "service"`},
		{"missing port", "POST", "/v1/publish", `{"service":"s"}`, 400, `missing field "port"`},
		{"empty service", "POST", "/v1/publish", `{"service":"","port":1}`, 400, "must not be empty"},
		{"invalid service", "POST", "/v1/publish", `{"service":"a/b","port":1}`, 400, "not allowed"},
		{"port zero", "POST", "/v1/publish", `{"service":"s","port":0}`, 400, "must be 1-65535"},
		{"port too big", "POST", "/v1/publish", `{"service":"s","port":65536}`, 400, "must be 1-65535"},
		{"port negative", "POST", "/v1/publish", `{"service":"s","port":-5}`, 400, "must be 1-65535"},
		{"port as string", "POST", "/v1/publish", `{"service":"s","port":"80"}`, 400, `field "port"`},
		{"port fraction", "POST", "/v1/publish", `{"service":"s","port":80.5}`, 400, `port`},
		{"port huge", "POST", "/v1/publish", `{"service":"s","port":1e30}`, 400, `port`},
		{"bad protocol", "POST", "/v1/publish", `{"service":"s","port":1,"protocol":"udp"}`, 400, "protocol"},
		{"bad health", "POST", "/v1/publish", `{"service":"s","port":1,"health":{"type":"icmp"}}`, 400, "health.type"},
		{"unknown health field", "POST", "/v1/publish", `{"service":"s","port":1,"health":{"kind":"tcp"}}`, 400, `unknown field "kind"`},
		{"reserved metadata", "POST", "/v1/publish", `{"service":"s","port":1,"metadata":{"detour.mesh":"x"}}`, 400, "reserved"},
		{"metadata not strings", "POST", "/v1/publish", `{"service":"s","port":1,"metadata":{"k":1}}`, 400, "metadata"},
		{"body too large", "POST", "/v1/publish", big, 413, "too large"},
		{"conflicting port", "POST", "/v1/publish", `{"service":"kept","port":9090}`, 409, "already published"},
		{"publish with GET", "GET", "/v1/publish", ``, 405, "use POST"},
		{"unpublish never published", "POST", "/v1/unpublish", `{"service":"never","port":1}`, 404, "not published"},
		{"unpublish wrong port", "POST", "/v1/unpublish", `{"service":"kept","port":1}`, 404, "not published"},
		{"unpublish missing port", "POST", "/v1/unpublish", `{"service":"kept"}`, 400, `missing field "port"`},
		{"unpublish unknown field", "POST", "/v1/unpublish", `{"service":"kept","port":8080,"force":true}`, 400, "unknown field"},
		{"unpublish bad port", "POST", "/v1/unpublish", `{"service":"kept","port":70000}`, 400, "must be 1-65535"},
		{"resolve no service", "GET", "/v1/resolve", ``, 400, `missing query parameter "service"`},
		{"resolve empty service", "GET", "/v1/resolve?service=", ``, 400, "must not be empty"},
		{"resolve invalid service", "GET", "/v1/resolve?service=a%2Fb", ``, 400, "not allowed"},
		{"resolve unknown param", "GET", "/v1/resolve?service=s&index=3", ``, 400, `unknown query parameter "index"`},
		{"resolve twice", "GET", "/v1/resolve?service=s&service=t", ``, 400, "given 2 times"},
		{"resolve bad revision", "GET", "/v1/resolve?service=s&revision=-1", ``, 400, "revision"},
		{"resolve bad wait", "GET", "/v1/resolve?service=s&revision=1&wait=soon", ``, 400, "wait"},
		{"resolve wait alone", "GET", "/v1/resolve?service=s&wait=1s", ``, 400, "wait without revision"},
		{"resolve with POST", "POST", "/v1/resolve?service=s", ``, 405, "use GET"},
		{"mesh missing enabled", "PUT", "/v1/services/kept/mesh", `{}`, 400, `missing field "enabled"`},
		{"mesh enabled string", "PUT", "/v1/services/kept/mesh", `{"enabled":"yes"}`, 400, `field "enabled"`},
		{"mesh bad service", "PUT", "/v1/services/-x/mesh", `{"enabled":false}`, 400, "must start with"},
		{"mesh unknown field", "PUT", "/v1/services/kept/mesh", `{"enabled":false,"now":1}`, 400, "unknown field"},
		{"mesh wrong path", "PUT", "/v1/services/kept/flag", `{"enabled":false}`, 404, "no such endpoint"},
		{"mesh with POST", "POST", "/v1/services/kept/mesh", `{"enabled":false}`, 405, "use PUT"},
		{"status with params", "GET", "/v1/status?x=1", ``, 400, "no query parameters"},
		{"unknown path", "GET", "/v2/anything", ``, 404, "no such endpoint"},
	}
	before := fingerprint(e.a)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, ts, tc.method, tc.path, tc.body)
			msg, _ := body["error"].(string)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("%s %s %.60s: %d %q; want %d with %q", tc.method, tc.path, tc.body, code, msg, tc.code, tc.want)
			}
			if after := fingerprint(e.a); after != before {
				t.Fatalf("state changed:\n before %s\n after  %s", before, after)
			}
		})
	}
}

func TestHTTPFlow(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewServer(HTTPHandler(e.a, e.cfg.API, zap.NewNop()))
	defer ts.Close()

	code, pub := do(t, ts, "POST", "/v1/publish", `{"service":"greeter","port":8080,"protocol":"grpc","metadata":{"zone":"a"},"health":{"type":"grpc"}}`)
	if code != 200 || pub["ingress_port"].(float64) != 20000 || pub["registered_addr"] == nil {
		t.Fatalf("publish = %d %v", code, pub)
	}
	eventually(t, "registered", func() bool {
		eps, _ := e.other.List(context.Background(), "greeter")
		return len(eps) == 1 && eps[0].Addr == "127.0.0.1:8080"
	})

	code, ans := do(t, ts, "GET", "/v1/resolve?service=greeter", "")
	if code != 200 || ans["service"] != "greeter" || ans["mesh"] != false {
		t.Fatalf("resolve = %d %v", code, ans)
	}
	gov := ans["governance"].(map[string]any)
	if len(gov) != 1 || gov["mesh"] != false {
		t.Errorf("governance out of the mesh = %v, want only mesh:false", gov)
	}
	rev := strconv.FormatFloat(ans["revision"].(float64), 'f', -1, 64)

	// A blocking query returns when the answer changes.
	done := make(chan map[string]any, 1)
	go func() {
		_, a := do(t, ts, "GET", "/v1/resolve?service=greeter&revision="+rev+"&wait=5s", "")
		done <- a
	}()
	eventually(t, "blocked query", func() bool { return e.a.Metrics() != nil && subscribers(e.a, "greeter") > 0 })
	if err := e.other.Register(context.Background(), registry.Endpoint{Service: "greeter", Addr: "10.0.0.2:9000"}); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if eps := got["endpoints"].([]any); len(eps) != 2 {
		t.Errorf("blocking query answer = %v", got)
	}

	if code, body := do(t, ts, "PUT", "/v1/services/greeter/mesh", `{"enabled":false}`); code != 200 || body["enabled"] != false {
		t.Fatalf("mesh = %d %v", code, body)
	}
	code, st := do(t, ts, "GET", "/v1/status", "")
	if code != 200 || !slices.Contains(st["mesh_disabled"].([]any), any("greeter")) {
		t.Fatalf("status = %d %v", code, st)
	}
	if code, body := do(t, ts, "POST", "/v1/unpublish", `{"service":"greeter","port":8080}`); code != 200 {
		t.Fatalf("unpublish = %d %v", code, body)
	}

	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"detour_agent_sidecar_up 0", "detour_agent_subscriptions 1", "detour_agent_registry_up 1", "go_goroutines"} {
		if !strings.Contains(string(b), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
}

func subscribers(a *agent.Agent, svc string) int {
	for _, s := range a.Status().Subscriptions {
		if s.Service == svc {
			return s.Subscribers
		}
	}
	return 0
}

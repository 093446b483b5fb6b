package api

import (
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestHTTPRoutesAndLimits(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewServer(HTTPHandler(e.a, e.cfg.API, zap.NewNop()))
	defer ts.Close()
	if code, body := do(t, ts, "POST", "/v1/publish", `{"service":"kept","port":8080}`); code != 200 {
		t.Fatalf("setup publish: %d %v", code, body)
	}
	good := `{"subsets":[{"name":"v1","labels":{"version":"1"}},{"name":"v2","labels":{"version":"2"}}],"default":"v1",
		"split":[{"subset":"v1","weight":95},{"subset":"v2","weight":5}],
		"rules":[{"name":"t","match":{"headers":[{"name":"x-canary","exact":"1"}]},"split":[{"subset":"v2","weight":100}]}]}`
	if code, body := do(t, ts, "PUT", "/v1/services/kept/routes", good); code != 200 {
		t.Fatalf("put routes: %d %v", code, body)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"PUT", "/v1/services/kept/routes", strings.Replace(good, `"weight":5`, `"weight":4`, 1), "routes.split: weights sum to 99"},
		{"PUT", "/v1/services/kept/routes", strings.Replace(good, `"exact":"1"`, `"regex":"[a"`, 1), "routes.rules[0].match.headers[0].regex"},
		{"PUT", "/v1/services/kept/routes", strings.Replace(good, `"subset":"v2","weight":100`, `"subset":"v3","weight":100`, 1), `routes.rules[0].split[0].subset: "v3" is not a subset`},
		{"PUT", "/v1/services/kept/routes", `{"subsets":[],"splits":[]}`, "unknown field"},
		{"PUT", "/v1/services/kept/limits", `{"rps":-5}`, "limits.rps"},
		{"PUT", "/v1/services/kept/limits", `{"burst":5}`, "limits.burst: given without rps"},
		{"PUT", "/v1/services/kept/limits", `{"rps":1e12}`, "limits.rps"},
	} {
		code, body := do(t, ts, tc.method, tc.path, tc.body)
		if code != 400 || !strings.Contains(body["error"].(string), tc.want) {
			t.Fatalf("%s %s %s: %d %v, want 400 %q", tc.method, tc.path, tc.body, code, body, tc.want)
		}
	}
	code, body := do(t, ts, "GET", "/v1/services/kept/routes", "")
	split := body["routes"].(map[string]any)["split"].([]any)
	if code != 200 || split[1].(map[string]any)["weight"] != 5.0 {
		t.Fatalf("get routes after refused changes: %d %v", code, body)
	}
	if code, body := do(t, ts, "PUT", "/v1/services/kept/limits", `{"rps":100,"burst":10,"max_concurrent":50}`); code != 200 {
		t.Fatalf("put limits: %d %v", code, body)
	}
	if code, body := do(t, ts, "GET", "/v1/services/kept/limits", ""); code != 200 || body["limits"].(map[string]any)["rps"] != 100.0 {
		t.Fatalf("get limits: %d %v", code, body)
	}
	if code, body := do(t, ts, "DELETE", "/v1/services/kept/routes", ""); code != 200 {
		t.Fatalf("delete routes: %d %v", code, body)
	}
	if code, body := do(t, ts, "GET", "/v1/services/kept/routes", ""); code != 200 || body["routes"] != nil {
		t.Fatalf("routes after delete: %d %v", code, body)
	}
	if code, _ := do(t, ts, "POST", "/v1/services/kept/routes", good); code != 405 {
		t.Fatalf("POST routes: %d", code)
	}
	if code, _ := do(t, ts, "PUT", "/v1/services/nobody/routes", good); code != 404 {
		t.Fatalf("unknown service: %d", code)
	}
}

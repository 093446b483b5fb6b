package shim

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestMeshServiceConfig(t *testing.T) {
	for _, tc := range []struct{ name, app, want string }{
		{"empty", `{}`, `{}`},
		{"retry and hedging removed, the rest kept",
			`{"loadBalancingConfig":[{"round_robin":{}}],"methodConfig":[
			  {"name":[{"service":"a"}],"timeout":"1s","retryPolicy":{"maxAttempts":3}},
			  {"name":[{"service":"b"}],"hedgingPolicy":{"maxAttempts":2}}]}`,
			`{"loadBalancingConfig":[{"round_robin":{}}],"methodConfig":[
			  {"name":[{"service":"a"}],"timeout":"1s"},
			  {"name":[{"service":"b"}]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := meshServiceConfig(tc.app)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal([]byte(got), &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("meshServiceConfig = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := meshServiceConfig(`{`); err == nil {
		t.Error("invalid JSON accepted")
	}
}

func TestAnswerFellBack(t *testing.T) {
	a := Answer{Service: "s", Mesh: true, Endpoints: []string{"127.0.0.1:30000"}, Fallback: []string{"10.0.0.1:80"},
		Governance: Governance{Mesh: true, Timeout: 1}, Revision: 7}
	f := a.fellBack()
	if f.Mesh || f.Governance != (Governance{}) || f.Endpoints[0] != "10.0.0.1:80" || f.Revision != 7 || !a.Mesh {
		t.Errorf("fellBack = %+v (from %+v)", f, a)
	}
}

func TestRetryRules(t *testing.T) {
	const sc = `{"methodConfig":[
	  {"name":[{"service":"a.S","method":"Get"}],"retryPolicy":{"maxAttempts":3,"retryableStatusCodes":["unavailable"]}},
	  {"name":[{"service":"a.S","method":"Put"}]},
	  {"name":[{"service":"a.S"}],"retryPolicy":{"maxAttempts":2,"retryableStatusCodes":[14]}},
	  {"name":[{"service":"b.S"}],"retryPolicy":{"maxAttempts":3,"retryableStatusCodes":["RESOURCE_EXHAUSTED"]}},
	  {"name":[{"service":"c.S"}],"retryPolicy":{"maxAttempts":1,"retryableStatusCodes":["UNAVAILABLE"]}},
	  {"name":[{}],"retryPolicy":{"maxAttempts":5,"retryableStatusCodes":["UNAVAILABLE"]}}]}`
	r, err := parseRetryRules(sc)
	if err != nil {
		t.Fatal(err)
	}
	for method, want := range map[string]bool{
		"/a.S/Get":   true,  // its own policy
		"/a.S/Put":   false, // its own config, without a policy
		"/a.S/Other": true,  // the service's (code 14)
		"/b.S/Get":   false, // not on UNAVAILABLE
		"/c.S/Get":   false, // one attempt is no retry
		"/d.S/Get":   true,  // the default
	} {
		if got := r.allows(method); got != want {
			t.Errorf("allows(%s) = %v, want %v", method, got, want)
		}
	}
	if r, _ := parseRetryRules(""); r.allows("/a.S/Get") {
		t.Error("no config retries")
	}
	if _, err := parseRetryRules("{"); err == nil {
		t.Error("invalid JSON accepted")
	}
}

// FuzzServiceConfig: any app config either fails to parse or gives a
// mesh config without retry or hedging policies, and retry rules.
func FuzzServiceConfig(f *testing.F) {
	f.Add(`{}`)
	f.Add(`{"methodConfig":[{"name":[{"service":"a"}],"retryPolicy":{"maxAttempts":3,"retryableStatusCodes":["UNAVAILABLE"]}}]}`)
	f.Add(`{"methodConfig":[{"name":[{}],"hedgingPolicy":{}},1,"x"]}`)
	f.Fuzz(func(t *testing.T, app string) {
		mesh, err := meshServiceConfig(app)
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(mesh), &m); err != nil {
			t.Fatalf("mesh config %q: %v", mesh, err)
		}
		if mcs, ok := m["methodConfig"].([]any); ok {
			for _, mc := range mcs {
				if o, ok := mc.(map[string]any); ok && (o["retryPolicy"] != nil || o["hedgingPolicy"] != nil) {
					t.Fatalf("mesh config %q keeps a policy", mesh)
				}
			}
		}
		if r, err := parseRetryRules(app); err == nil {
			r.allows("/a/b")
		}
	})
}

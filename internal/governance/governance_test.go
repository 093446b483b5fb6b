package governance

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/detourmesh/detour/api/agentjson"
)

const good = `{"subsets":[{"name":"v1","labels":{"version":"1"}},{"name":"v2","labels":{"version":"2"}}],"default":"v1",
 "split":[{"subset":"v1","weight":95},{"subset":"v2","weight":5}],
 "rules":[{"name":"t","match":{"headers":[{"name":"x-canary","regex":"1|yes"}]},"split":[{"subset":"v2","weight":100}],
           "fault":{"abort_percent":10,"abort_status":503}}],
 "fault":{"delay_percent":5,"delay_ms":100}}`

func parse(t testing.TB, s string) *agentjson.Routes {
	var r agentjson.Routes
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestValidateRoutes(t *testing.T) {
	if err := ValidateRoutes(RoutesProto(parse(t, good))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"weight":5}`, `"weight":6}`, "split: weights sum to 101, not 100"},
		{`"subset":"v2","weight":100`, `"subset":"v9","weight":100`, `rules[0].split[0].subset: "v9" is not a subset`},
		{`"1|yes"`, `"1|("`, "rules[0].match.headers[0].regex: error parsing"},
		{`"default":"v1"`, `"default":"v0"`, "default"},
		{`{"name":"v2","labels":{"version":"2"}}`, `{"name":"v1","labels":{"version":"2"}}`, `subsets[1].name: "v1" named twice`},
		{`{"name":"v2","labels":{"version":"2"}}`, `{"name":"v2","labels":{}}`, "subsets[1].labels: empty"},
		{`"abort_status":503`, `"abort_status":99`, "rules[0].fault.abort_status"},
		{`"abort_percent":10`, `"abort_percent":101`, "rules[0].fault.abort_percent"},
		{`"delay_ms":100`, `"delay_ms":0`, "fault.delay_ms"},
		{`"match":{"headers":[{"name":"x-canary","regex":"1|yes"}]}`, `"match":{}`, "rules[0].match: empty"},
		{`"name":"x-canary","regex"`, `"name":"x-canary","exact":"1","regex"`, "exact and regex both"},
	} {
		s := strings.Replace(good, tc.from, tc.to, 1)
		if s == good {
			t.Fatalf("%q not in the rules", tc.from)
		}
		err := ValidateRoutes(RoutesProto(parse(t, s)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}

func TestValidateLimit(t *testing.T) {
	for _, tc := range []struct {
		l    agentjson.Limit
		want string
	}{
		{agentjson.Limit{RPS: -1}, "rps"}, {agentjson.Limit{RPS: 2e7}, "rps"},
		{agentjson.Limit{Burst: 3}, "burst: given without rps"}, {agentjson.Limit{RPS: 1, Burst: 2e7}, "burst"},
	} {
		if err := ValidateLimit(LimitProto(&tc.l)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.l, err, tc.want)
		}
	}
	if LimitProto(&agentjson.Limit{}) != nil || ValidateLimit(LimitProto(&agentjson.Limit{RPS: 100, Burst: 10, MaxConcurrent: 5})) != nil {
		t.Fatal("good limits refused")
	}
}

// FuzzRoutes: any JSON either fails to decode, is refused with an error,
// or is valid; never a panic.
func FuzzRoutes(f *testing.F) {
	f.Add(good)
	f.Add(`{"subsets":[{"name":"a","labels":{"":"x"}}]}`)
	f.Add(`{"rules":[{"match":{"headers":[{"name":"h","regex":"(?i)a{1000}"}]}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var r agentjson.Routes
		if json.Unmarshal([]byte(s), &r) != nil {
			return
		}
		_ = ValidateRoutes(RoutesProto(&r))
	})
}

func TestRoundTrip(t *testing.T) {
	r := parse(t, good)
	back := RoutesFromProto(RoutesProto(r))
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}
	l := &agentjson.Limit{RPS: 5, Burst: 2, MaxConcurrent: 3}
	if *LimitFromProto(LimitProto(l)) != *l || RoutesFromProto(nil) != nil || LimitFromProto(nil) != nil {
		t.Fatal("limit round trip")
	}
}

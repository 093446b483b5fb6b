package config

import (
	"strings"
	"testing"
)

func TestServiceRoutesAndLimits(t *testing.T) {
	const good = `
services:
  web:
    routes:
      subsets:
        - {name: v1, labels: {version: "1"}}
        - {name: v2, labels: {version: "2"}}
      default: v1
      split: [{subset: v1, weight: 95}, {subset: v2, weight: 5}]
      rules:
        - name: testers
          match: {headers: [{name: x-canary, exact: "1"}]}
          split: [{subset: v2, weight: 100}]
    limits: {rps: 100, burst: 20, max_concurrent: 50}
`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Services["web"].Routes; r == nil || r.Split[1].Weight != 5 || r.Rules[0].Match.Headers[0].Exact != "1" || c.Services["web"].Limits.RPS != 100 {
		t.Fatalf("parsed %+v", c.Services["web"])
	}
	for _, tc := range []struct{ from, to, want string }{
		{"weight: 5}", "weight: 4}", "services.web.routes: split: weights sum to 99"},
		{"subset: v2, weight: 100", "subset: v3, weight: 100", `services.web.routes: rules[0].split[0].subset: "v3" is not a subset`},
		{"rps: 100", "rps: -1", "services.web.limits: rps"},
	} {
		c, err := Parse([]byte(strings.Replace(good, tc.from, tc.to, 1)))
		if err == nil {
			c.DataDir = t.TempDir()
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}

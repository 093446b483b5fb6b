package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

// stdin is where "set SERVICE -" reads the rules (tests replace it).
var stdin io.Reader = os.Stdin

// governance runs "routes|limits set SERVICE FILE|-", "... show SERVICE"
// and "... clear SERVICE". The rules are the agent's JSON (see
// api/agentjson.Routes and Limit); show prints them as the agent holds
// them, the sidecar's /stats (detourctl sidecar --json) has their counts.
func (c *ctl) governance(what string, a []string) (int, error) {
	if len(a) < 2 || (a[0] == "set") != (len(a) == 3) || len(a) > 3 {
		return 2, fmt.Errorf("%s: want set SERVICE FILE|-, show SERVICE or clear SERVICE", what)
	}
	path := "/v1/services/" + url.PathEscape(a[1]) + "/" + what
	var out map[string]json.RawMessage
	var raw []byte
	var err error
	switch a[0] {
	case "show":
		raw, err = c.call(http.MethodGet, path, nil, &out)
	case "clear":
		raw, err = c.call(http.MethodDelete, path, nil, &out)
	case "set":
		var b []byte
		if a[2] == "-" {
			b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			b, err = os.ReadFile(a[2])
		}
		if err != nil {
			return 1, err
		}
		if !json.Valid(b) {
			return 1, fmt.Errorf("%s: not JSON", a[2])
		}
		raw, err = c.call(http.MethodPut, path, json.RawMessage(b), &out)
	default:
		return 2, fmt.Errorf("%s %q: want set, show or clear", what, a[0])
	}
	if err != nil {
		return 1, err
	}
	if c.asJSON {
		return 0, c.printJSON(raw)
	}
	if a[0] == "show" {
		if err := c.printJSON(raw); err != nil {
			return 1, err
		}
		c.counts(what, a[1])
		return 0, nil
	}
	if string(out[what]) == "null" {
		fmt.Fprintf(c.out, "%s of %s cleared (the config's apply, if any)\n", what, a[1])
	} else {
		fmt.Fprintf(c.out, "%s of %s set\n", what, a[1])
	}
	return 0, nil
}

// sidecarStats is the part of the sidecar's /stats that counts rules.
type sidecarStats struct {
	Listeners []struct {
		Listen  string `json:"listen"`
		Kind    string `json:"kind"`
		Service string `json:"service"`
		Limit   *struct {
			InFlight           int64  `json:"in_flight"`
			Admitted           uint64 `json:"admitted"`
			RateLimited        uint64 `json:"rate_limited"`
			ConcurrencyLimited uint64 `json:"concurrency_limited"`
		} `json:"limit"`
	} `json:"listeners"`
	Clusters []struct {
		Service string `json:"service"`
		Routes  *struct {
			Rules []struct {
				Name    string `json:"name"`
				Matched uint64 `json:"matched"`
			} `json:"rules"`
			Unmatched uint64 `json:"unmatched"`
			Fallback  uint64 `json:"fallback"`
			Delayed   uint64 `json:"fault_delayed"`
			Aborted   uint64 `json:"fault_aborted"`
		} `json:"routes"`
	} `json:"clusters"`
}

// counts prints what this host's sidecar counted for service's rules
// (its /stats, at the admin address the agent knows); a sidecar out of
// reach is said on stderr, not an error: the rules were shown.
func (c *ctl) counts(what, service string) {
	st, _, err := c.fetchStatus()
	if err == nil && st.Sidecar.AdminAddr == "" {
		err = fmt.Errorf("the agent knows no sidecar admin address")
	}
	var doc sidecarStats
	if err == nil {
		err = c.getJSON("http://"+st.Sidecar.AdminAddr+"/stats", &doc)
	}
	if err != nil {
		fmt.Fprintf(c.errOut, "detourctl: no counts: sidecar /stats: %v\n", err)
		return
	}
	found := false
	if what == "routes" {
		for _, cl := range doc.Clusters {
			if cl.Service != service || cl.Routes == nil {
				continue
			}
			found = true
			fmt.Fprintf(c.out, "in force at the sidecar (egress): unmatched %d, fallback %d, fault delayed %d, fault aborted %d\n",
				cl.Routes.Unmatched, cl.Routes.Fallback, cl.Routes.Delayed, cl.Routes.Aborted)
			for i, r := range cl.Routes.Rules {
				fmt.Fprintf(c.out, "  rule %d %s: matched %d\n", i, dash(r.Name), r.Matched)
			}
		}
	} else {
		for _, l := range doc.Listeners {
			if l.Service != service || l.Limit == nil {
				continue
			}
			found = true
			fmt.Fprintf(c.out, "in force at the sidecar (%s %s): admitted %d, rate limited %d, concurrency limited %d, in flight %d\n",
				l.Kind, l.Listen, l.Limit.Admitted, l.Limit.RateLimited, l.Limit.ConcurrencyLimited, l.Limit.InFlight)
		}
	}
	if !found {
		fmt.Fprintf(c.out, "not in force at this host's sidecar (%s applies at %s)\n", what, map[string]string{"routes": "egress: a subscriber's host", "limits": "ingress: a publisher's host"}[what])
	}
}

// getJSON GETs url and decodes its JSON.
func (c *ctl) getJSON(url string, v any) error {
	resp, err := c.client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

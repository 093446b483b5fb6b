package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/detourmesh/detour/api/agentjson"
)

// resolve prints the answer apps get for service. A resolve subscribes
// the agent to a service it did not watch, which then holds a watch and
// an egress port for good: that is said on stderr, so a typo does not
// leave one behind unnoticed. An answer with no endpoints and no
// fallback is an error (exit 1): nothing is known of the service.
func (c *ctl) resolve(service string) error {
	before, _, err := c.fetchStatus()
	if err != nil {
		return err
	}
	_, known := subscription(before, service)
	var ans agentjson.Answer
	raw, err := c.call(http.MethodGet, "/v1/resolve?service="+url.QueryEscape(service), nil, &ans)
	if !known {
		// Ask rather than assume: a refused resolve creates nothing.
		if after, _, serr := c.fetchStatus(); serr == nil {
			if s, ok := subscription(after, service); ok {
				holds := ""
				if s.EgressPort != 0 {
					holds = fmt.Sprintf(" and holds an egress port for it (%d)", s.EgressPort)
				}
				fmt.Fprintf(c.errOut, "(new subscription: this agent now watches %s%s; 'detourctl unsubscribe %s' removes it)\n", service, holds, service)
			}
		}
	}
	if err != nil {
		return err
	}
	if c.asJSON {
		if err := c.printJSON(raw); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.out, "service:    %s (revision %d)\n", ans.Service, ans.Revision)
		fmt.Fprintf(c.out, "mesh:       %v\n", ans.Mesh)
		fmt.Fprintf(c.out, "endpoints:  %s\n", joinAddrs(ans.Endpoints))
		fmt.Fprintf(c.out, "fallback:   %s\n", joinAddrs(ans.Fallback))
		if g := ans.Governance; g.Mesh && g.Retries != nil && g.TimeoutMS != nil {
			fmt.Fprintf(c.out, "governance: retries %d, timeout %dms (enforced by the sidecar)\n", *g.Retries, *g.TimeoutMS)
		} else {
			fmt.Fprintf(c.out, "governance: the app's own policy\n")
		}
	}
	if len(ans.Endpoints) == 0 && len(ans.Fallback) == 0 {
		return fmt.Errorf("nothing is known of %s: no endpoints, no fallback (registered nowhere this agent's registry sees: a typo?)", service)
	}
	return nil
}

// subscription finds service among st's subscriptions.
func subscription(st agentjson.Status, service string) (agentjson.Subscription, bool) {
	for _, s := range st.Subscriptions {
		if s.Service == service {
			return s, true
		}
	}
	return agentjson.Subscription{}, false
}

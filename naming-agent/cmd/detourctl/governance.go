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
	if c.asJSON || a[0] == "show" {
		return 0, c.printJSON(raw)
	}
	if string(out[what]) == "null" {
		fmt.Fprintf(c.out, "%s of %s cleared (the config's apply, if any)\n", what, a[1])
	} else {
		fmt.Fprintf(c.out, "%s of %s set\n", what, a[1])
	}
	return 0, nil
}

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/detourmesh/detour/api/agentjson"
	"github.com/detourmesh/detour/naming-agent/agent"
)

// governance serves GET, PUT and DELETE /v1/services/S/routes and
// /v1/services/S/limits: the rules in force, set live (the body is the
// JSON of agentjson.Routes or agentjson.Limit), or the run-time setting
// removed (the config's applies again, if it has one).
func (h *httpAPI) governance(w http.ResponseWriter, r *http.Request, svc, what string) {
	switch r.Method {
	case http.MethodGet:
		h.reading(func(w http.ResponseWriter, r *http.Request) {
			var v any
			var err error
			if what == "routes" {
				v, err = h.a.Routes(svc)
			} else {
				v, err = h.a.Limit(svc)
			}
			if err != nil {
				h.fail(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"service": svc, what: v})
		})(w, r)
	case http.MethodPut, http.MethodDelete:
		h.mutating(func(w http.ResponseWriter, r *http.Request) { h.setGovernance(w, r, svc, what) })(w, r)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use GET, PUT or DELETE", r.Method, r.URL.Path))
	}
}

func (h *httpAPI) setGovernance(w http.ResponseWriter, r *http.Request, svc, what string) {
	if err := h.auth.allow(httpToken(r), svc, 0); err != nil {
		h.fail(w, err)
		return
	}
	var routes *agentjson.Routes
	var limit *agentjson.Limit
	if r.Method == http.MethodPut {
		b, err := h.body(r)
		if err != nil {
			h.fail(w, err)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if what == "routes" {
			routes = new(agentjson.Routes)
			err = dec.Decode(routes)
		} else {
			limit = new(agentjson.Limit)
			err = dec.Decode(limit)
		}
		if err == nil && dec.More() {
			err = fmt.Errorf("data after the JSON value")
		}
		if err != nil {
			h.fail(w, fmt.Errorf("%w: %s: %v", agent.ErrInvalid, what, err))
			return
		}
	}
	var err error
	if what == "routes" {
		err = h.a.SetRoutes(svc, routes)
	} else {
		err = h.a.SetLimit(svc, limit)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	if what == "routes" {
		writeJSON(w, http.StatusOK, map[string]any{"service": svc, what: routes})
	} else {
		writeJSON(w, http.StatusOK, map[string]any{"service": svc, what: limit})
	}
}

package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/internal/httpbody"
	"github.com/detourmesh/detour/internal/nobrowser"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/config"
)

// HTTPHandler serves the agent's HTTP/JSON API and /metrics:
//
//	POST /v1/publish                 {"service","port","protocol","metadata","health":{"type","path"}}
//	POST /v1/unpublish               {"service","port"}
//	GET  /v1/resolve?service=S[&revision=N&wait=30s]
//	PUT  /v1/services/S/mesh         {"enabled": bool}
//	GET|PUT|DELETE /v1/services/S/routes, /v1/services/S/limits (governance.go)
//	GET  /v1/status
//	GET  /metrics
//
// Errors are {"error": "..."} with a 4xx or 5xx status. A request body over
// cfg.MaxBodyBytes never reaches a handler: httpbody.Limit answers 413.
// With cfg.Token (or scoped tokens) the changes need X-Detour-Token or
// Authorization: Bearer (401, 403 out of a scoped token's scope), reads
// too with cfg.TokenForReads; a request from a web page is 403 (auth.go).
func HTTPHandler(a *agent.Agent, cfg config.API, log *zap.Logger) http.Handler {
	h := &httpAPI{a: a, cfg: cfg, log: log.Named("api.http"), auth: newAuth(cfg)}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/publish", h.method(http.MethodPost, h.mutating(h.publish)))
	mux.HandleFunc("/v1/unpublish", h.method(http.MethodPost, h.mutating(h.unpublish)))
	mux.HandleFunc("/v1/resolve", h.method(http.MethodGet, h.reading(h.resolve)))
	mux.HandleFunc("/v1/status", h.method(http.MethodGet, h.reading(h.status)))
	mux.HandleFunc("/v1/services/", h.services)
	mux.Handle("/metrics", h.reading(promhttp.HandlerFor(a.Metrics().Registry, promhttp.HandlerOpts{}).ServeHTTP))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return nobrowser.Refuse(httpbody.Limit(cfg.MaxBodyBytes, mux))
}

type httpAPI struct {
	a    *agent.Agent
	cfg  config.API
	log  *zap.Logger
	auth *auth
}

// reading asks a valid token of a read when api.token_for_reads is set.
func (h *httpAPI) reading(f http.HandlerFunc) http.HandlerFunc {
	if !h.cfg.TokenForReads {
		return f
	}
	return h.mutating(f) // any valid token: a scoped one reads everything
}

// mutating refuses a change without a valid token (401, before the body
// is read) when the agent has one; the handler checks the token's scope.
func (h *httpAPI) mutating(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h.auth.check(httpToken(r)); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="detour"`)
			h.fail(w, err)
			return
		}
		f(w, r)
	}
}

func (h *httpAPI) method(m string, f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m))
			return
		}
		f(w, r)
	}
}

// body reads r's body, which httpbody.Limit has already bounded.
func (h *httpAPI) body(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", agent.ErrInvalid, err)
	}
	return b, nil
}

func (h *httpAPI) publish(w http.ResponseWriter, r *http.Request) {
	b, err := h.body(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	req, err := decodePublish(b)
	if err == nil {
		err = h.auth.allow(httpToken(r), req.Service, req.Port)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	pub, err := h.a.Publish(req)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pub)
}

func (h *httpAPI) unpublish(w http.ResponseWriter, r *http.Request) {
	b, err := h.body(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	svc, port, err := decodeUnpublish(b)
	if err == nil {
		err = h.auth.allow(httpToken(r), svc, 0)
	}
	if err == nil {
		err = h.a.Unpublish(svc, port)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": svc, "port": port})
}

func (h *httpAPI) resolve(w http.ResponseWriter, r *http.Request) {
	q, err := parseResolve(r.URL.Query(), h.cfg.MaxWait)
	if err != nil {
		h.fail(w, err)
		return
	}
	var ans agent.Answer
	if q.wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), q.wait)
		ans, err = h.a.Wait(ctx, q.service, q.revision)
		cancel()
	} else {
		ans, err = h.a.Resolve(r.Context(), q.service)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("X-Detour-Revision", strconv.FormatUint(ans.Revision, 10))
	writeJSON(w, http.StatusOK, ans)
}

// services serves PUT /v1/services/S/mesh and DELETE
// /v1/services/S/subscription.
func (h *httpAPI) services(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/services/")
	svc, tail, _ := strings.Cut(rest, "/")
	switch tail {
	case "mesh":
		h.method(http.MethodPut, h.mutating(func(w http.ResponseWriter, r *http.Request) { h.mesh(w, r, svc) }))(w, r)
	case "subscription":
		h.method(http.MethodDelete, h.mutating(func(w http.ResponseWriter, r *http.Request) { h.unsubscribe(w, r, svc) }))(w, r)
	case "routes", "limits":
		h.governance(w, r, svc, tail)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (PUT /v1/services/SERVICE/mesh, DELETE /v1/services/SERVICE/subscription)", r.Method, r.URL.Path))
	}
}

func (h *httpAPI) unsubscribe(w http.ResponseWriter, r *http.Request, svc string) {
	if len(r.URL.Query()) > 0 {
		h.fail(w, fmt.Errorf("%w: DELETE /v1/services/S/subscription takes no query parameters", agent.ErrInvalid))
		return
	}
	if err := h.auth.allow(httpToken(r), svc, 0); err != nil {
		h.fail(w, err)
		return
	}
	if err := h.a.Unsubscribe(svc); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": svc, "unsubscribed": true})
}

func (h *httpAPI) mesh(w http.ResponseWriter, r *http.Request, svc string) {
	b, err := h.body(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	enabled, err := decodeMesh(b)
	if err == nil {
		err = h.auth.allow(httpToken(r), svc, 0)
	}
	if err == nil {
		err = h.a.SetMesh(svc, enabled)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": svc, "enabled": enabled})
}

func (h *httpAPI) status(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		h.fail(w, fmt.Errorf("%w: /v1/status takes no query parameters", agent.ErrInvalid))
		return
	}
	writeJSON(w, http.StatusOK, h.a.Status())
}

func (h *httpAPI) fail(w http.ResponseWriter, err error) {
	code := httpStatus(err)
	if code >= 500 {
		h.log.Warn("request failed", zap.Int("status", code), zap.Error(err))
	}
	writeError(w, code, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

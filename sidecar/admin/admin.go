// Package admin is the sidecar's admin HTTP server: /ready (a snapshot
// applied, its listeners up, not draining), /stats (JSON per listener,
// cluster and endpoint), /config (the applied snapshot and its version)
// and /metrics (Prometheus, from the sidecar's own registry).
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/detourmesh/detour/internal/httpbody"
)

// Source is what the admin server shows.
type Source interface {
	Ready() bool
	ConfigJSON() ([]byte, error)
	// StatsAny returns the /stats document.
	StatsAny() any
}

// MaxBodyBytes is the largest request body the admin server takes: its
// endpoints are all GETs and read no body, so a small one is tolerated and
// ignored; a larger one is answered 413 (package httpbody).
const MaxBodyBytes = 1 << 10

// Handler returns the admin mux, behind the body limit.
func Handler(src Source, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !src.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		b, err := src.ConfigJSON()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(src.StatsAny())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return httpbody.Limit(MaxBodyBytes, mux)
}

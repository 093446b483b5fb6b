package nacos

import (
	"net/http"
	"time"
)

// beatKey is an HTTP-registered ephemeral instance.
type beatKey struct {
	mesh string
}

// beating is the state of an HTTP-registered ephemeral instance.
type beating struct {
	last time.Time
}

// httpHandler serves the 1.x HTTP API (not yet: 501).
func (s *Server) httpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not implemented", http.StatusNotImplemented)
	})
}

// sweepBeats ends HTTP instances whose heartbeats stopped.
func (s *Server) sweepBeats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, b := range s.beats {
		if s.now().Sub(b.last) > s.cfg.BeatTimeout {
			delete(s.beats, k)
		}
	}
}

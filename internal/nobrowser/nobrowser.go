// Package nobrowser keeps web pages out of local HTTP APIs. Loopback does
// not: a page the host's user opens may POST text/plain or a form to
// 127.0.0.1 without a CORS preflight, and DNS rebinding lets it read the
// answers too. Browsers mark every such request (Origin on every
// cross-origin and every POST request, Sec-Fetch-Site on all of them in
// current browsers); the SDK, detourctl, curl and registry clients send
// neither.
package nobrowser

import (
	"encoding/json"
	"net/http"
)

// FromBrowser reports whether r was made by a web page: it has an Origin
// header, or a Sec-Fetch-Site other than "none" (a URL typed in the
// address bar).
func FromBrowser(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return r.Header.Get("Origin") != "" || (site != "" && site != "none")
}

// Refuse answers 403 with a JSON {"error": ...} to every request from a
// web page, before next sees it.
func Refuse(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if FromBrowser(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "requests from web pages are refused: this API is for the host's apps and tools"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

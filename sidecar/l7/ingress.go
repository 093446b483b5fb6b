package l7

import (
	"net/http"
	"sync"

	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/stats"
)

// Ingress forwards requests to the one local target the agent registered
// for the listener, whatever the request's Host or URL says.
type Ingress struct {
	Target     string
	Listener   *stats.Counters
	Transports *Transports
	GRPC       bool
	Pool       *sync.Pool
	// Limit, when set, caps what is admitted (429 / RESOURCE_EXHAUSTED).
	Limit *limit.Limiter
}

// ServeHTTP forwards one request.
func (h *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.Listener.Requests.Add(1)
	if ok, ra := h.Limit.Acquire(); !ok {
		refuseH2(w, r, ra)
		return
	}
	defer h.Limit.Release()
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = h.Target
	out.Close = false
	outHeaders(out.Header, r)
	resp, err := h.Transports.pick(r, h.GRPC).RoundTrip(out)
	if err != nil {
		kind := stats.Other
		if isDial(err) {
			kind = stats.DialKind(err)
		}
		h.Listener.Fail(kind)
		http.Error(w, "sidecar: app: "+err.Error(), http.StatusBadGateway)
		return
	}
	copyResponse(w, resp, h.Pool, h.GRPC) // bytes are counted on the connection (stats.Conn)
}

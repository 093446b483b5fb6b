package l7

import (
	"bufio"
	"net/http"
	"strconv"
	"time"

	"github.com/detourmesh/detour/sidecar/route"
)

// fault applies an injected delay or abort on the HTTP/1.1 path and
// reports whether the request goes on.
func (h *H1) fault(d route.Decision, bw *bufio.Writer) bool {
	if d.Delay > 0 {
		t := time.NewTimer(d.Delay)
		<-t.C
	}
	if d.Abort == 0 {
		return true
	}
	writeError(bw, d.Abort, "sidecar: fault injected")
	return false
}

// faultH2 is fault on the net/http path (h2c, gRPC).
func faultH2(d route.Decision, w http.ResponseWriter, r *http.Request) bool {
	if d.Delay > 0 {
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	if d.Abort == 0 {
		return true
	}
	if isGRPC(r) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", strconv.Itoa(d.AbortGRPC))
		w.Header().Set("Grpc-Message", "sidecar: fault injected")
		w.WriteHeader(http.StatusOK)
		return false
	}
	http.Error(w, "sidecar: fault injected", d.Abort)
	return false
}

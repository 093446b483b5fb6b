package l7

import (
	"bufio"
	"net/http"
	"strconv"
	"time"
)

// retryAfter is Retry-After's value: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// refuseH2 answers a request over the inbound limit: gRPC's
// RESOURCE_EXHAUSTED (trailers-only), else 429 with Retry-After.
func refuseH2(w http.ResponseWriter, r *http.Request, ra time.Duration) {
	if isGRPC(r) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "8")
		w.Header().Set("Grpc-Message", "sidecar: inbound limit")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Retry-After", retryAfter(ra))
	http.Error(w, "sidecar: inbound limit", http.StatusTooManyRequests)
}

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return len(ct) >= 16 && ct[:16] == "application/grpc"
}

// refuseH1 writes 429 with Retry-After on an HTTP/1.1 connection.
func refuseH1(bw *bufio.Writer, ra time.Duration) {
	msg := "sidecar: inbound limit\n"
	bw.WriteString("HTTP/1.1 429 Too Many Requests\r\nRetry-After: " + retryAfter(ra) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(msg)) + "\r\n\r\n" + msg)
	bw.Flush()
}

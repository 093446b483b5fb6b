// Package httpbody holds the one rule every HTTP surface of detour (the
// agent's API, the sidecar's admin server and health port) applies to
// request bodies: a body over the surface's limit is answered 413 with
// {"error": "..."}, and the client reads that answer whatever it sent
// (Expect: 100-continue or not, HTTP/1.0 or 1.1, chunked or not).
package httpbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// What refuse reads and discards after its answer, at most, while the
// client is still sending.
const (
	lingerTime  = 5 * time.Second
	lingerBytes = 64 << 20
)

// Limit returns a handler that applies Check to every request before next.
func Limit(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Check(w, r, limit) {
			next.ServeHTTP(w, r)
		}
	})
}

// Check applies the rule to r and reports whether the request may go on.
// When it returns false it has answered, and the caller must not touch w.
//
// A body whose Content-Length is over limit is refused before a byte of it
// is read, so net/http never sends "100 Continue" and a client that waits
// for it never sends the body. A body of unknown length (chunked) is read
// through http.MaxBytesReader, at most limit+1 bytes: over the limit it is
// refused; within it, r.Body is replaced by what was read, so the handler
// reads it as usual and never holds more than limit bytes of it.
func Check(w http.ResponseWriter, r *http.Request, limit int64) bool {
	if r.ContentLength > limit {
		refuse(w, r, limit, r.Body)
		return false
	}
	if r.ContentLength >= 0 {
		return true
	}
	body := r.Body
	b, err := io.ReadAll(http.MaxBytesReader(w, body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		refuse(w, r, limit, body)
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reading request body: %v", err))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return true
}

// refuse answers 413 with "Connection: close" and then, on HTTP/1, reads
// and discards what the client still sends of body until it stops (ends
// the body or closes), within lingerTime and lingerBytes.
//
// Why read at all: a server that closes a connection with unread data makes
// its kernel send RST, and a client still writing fails on its next write
// before it reads the 413 (curl: "Send failure: Connection reset by peer",
// exit 55). net/http's own guard after a refused body (FIN, then 500 ms,
// then close) is lost on a busy machine; RFC 9112 section 9.6 asks the
// server to go on reading until the client closes. A client that waited for
// "100 Continue" was never told to send, so it closes at once.
func refuse(w http.ResponseWriter, r *http.Request, limit int64, body io.Reader) {
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: more than %d bytes", limit))
	if r.ProtoMajor != 1 {
		return // HTTP/2 resets the stream, not the connection
	}
	rc := http.NewResponseController(w)
	if rc.Flush() != nil || rc.SetReadDeadline(time.Now().Add(lingerTime)) != nil {
		return
	}
	io.CopyN(io.Discard, body, lingerBytes)
}

// writeError writes {"error": msg}, as the agent's API does, with its
// Content-Length: the answer is whole when refuse flushes it, not chunked
// and ended only when the handler returns (curl, not seeing the end, would
// wait out its one second for "100 Continue" and then send the body).
func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

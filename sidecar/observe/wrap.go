package observe

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// Wrap observes each request h serves (the net/http path: h2c, gRPC).
func (l *Listener) Wrap(h http.Handler) http.Handler {
	if l == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sp := l.StartSpan(r.Header, r.Method, r.URL.Path)
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		g := w.Header().Get("Grpc-Status")
		if g == "" {
			g = w.Header().Get(http.TrailerPrefix + "Grpc-Status")
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		req := Request{Method: r.Method, Path: r.URL.Path, Proto: r.Proto, Remote: r.RemoteAddr, Status: sw.code, GRPCStatus: g}
		EndSpan(sp, req)
		l.Done(req, start)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// Flush keeps streaming (gRPC) working through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Sniffer sits under an HTTP/1.1 connection's bufio.Writer and reads the
// status of each response as it is written (the fast path writes heads
// itself; this sees every answer, the sidecar's own errors included).
type Sniffer struct {
	W    io.Writer
	head [12]byte
	n    int
	code int
}

// Reset starts a new response.
func (s *Sniffer) Reset() { s.n, s.code = 0, 0 }

// Status is the last response's status (1xx skipped), 0 if none.
func (s *Sniffer) Status() int { return s.code }

func (s *Sniffer) Write(p []byte) (int, error) {
	if s.code < 200 {
		s.sniff(p)
	}
	return s.W.Write(p)
}

func (s *Sniffer) sniff(p []byte) {
	for len(p) > 0 {
		if s.n < len(s.head) {
			c := copy(s.head[s.n:], p)
			s.n += c
			p = p[c:]
		}
		if s.n < len(s.head) {
			return
		}
		// "HTTP/1.1 NNN"
		code, _ := strconv.Atoi(string(s.head[9:12]))
		s.code = code
		if code >= 200 || code == 0 {
			return
		}
		// An interim answer (100 Continue): the real one follows its
		// blank line; find it.
		i := indexCRLFCRLF(p)
		if i < 0 {
			s.n = len(s.head) // wait for more; the end is in a later write
			s.code = 100
			return
		}
		p, s.n, s.code = p[i+4:], 0, 0
	}
}

func indexCRLFCRLF(p []byte) int {
	for i := 0; i+3 < len(p); i++ {
		if p[i] == '\r' && p[i+1] == '\n' && p[i+2] == '\r' && p[i+3] == '\n' {
			return i
		}
	}
	return -1
}

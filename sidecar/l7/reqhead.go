package l7

import (
	"bufio"
	"net/http"
	"net/url"
	"unsafe"
)

// The common client request is parsed straight from the connection's
// buffer, in the pass that checks it (scanHead): an HTTP/1.1 request
// without a body (no Content-Length, no Transfer-Encoding), origin-form
// target, no Pragma or Trailer, no obs-text, the whole head already read.
// It yields what http.ReadRequest would, without a textproto reader.
// Anything else is left to http.ReadRequest, so every request with a
// body or an odd head meets net/http's own checks (smuggling defences
// included). The Request, its Header, the values' backing array and the
// URL come from the connection's reqScratch, reused for each of its
// requests (one at a time): a keep-alive request allocates nothing.

// readRequestHead parses the common request (see above) from br when it
// holds a whole head that passes scanHead; anything else returns nil,
// nil with nothing consumed.
func readRequestHead(br *bufio.Reader, s *reqScratch) (*http.Request, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, err // what ReadRequest returns for a first line that fails
	}
	n, err := peekHead(&br, nil, &s.ends)
	if err != nil {
		return nil, nil
	}
	if req, err := s.take(br, n); err == nil {
		return req, nil
	}
	return nil, nil
}

// take checks the head of n bytes at br's start (peekHead's, with
// s.ends) and, if it is the common request, parses and consumes it; nil,
// nil: a head for http.ReadRequest.
func (s *reqScratch) take(br *bufio.Reader, n int) (*http.Request, error) {
	head, _ := br.Peek(n)
	fast, err := scanHead(s.arena.keep(head), s.ends, s)
	if err != nil || !fast {
		return nil, err
	}
	br.Discard(n)
	return &s.req, nil
}

// reqScratch is what one connection reuses from request to request.
type reqScratch struct {
	req  http.Request
	h    http.Header
	vals []string
	ends []int     // peekHead's line ends
	fwd  [3]string // X-Forwarded-* values (outHeadersInto)
	// shard is the upstream pool's shard this connection keeps to.
	shard int

	arena arena
	// The last target parsed and its URL: a client asks for the same
	// few paths over and over.
	target string
	parsed url.URL
	u      url.URL
}

// url returns target's URL (nil: not one ParseRequestURI takes), a copy
// of its own in s, so a change to it reaches no later request.
func (s *reqScratch) url(target string) *url.URL {
	if target != s.target {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return nil
		}
		s.target, s.parsed = target, *u
	}
	s.u = s.parsed
	return &s.u
}

// fields readies s.h for a new head of n field lines and returns the
// values' backing array, one for the whole head, as textproto does.
func (s *reqScratch) fields(n int) []string {
	if s.h == nil {
		s.h = make(http.Header, n+3)
	}
	clear(s.h)
	if cap(s.vals) < n {
		s.vals = make([]string, n)
	}
	return s.vals[:n]
}

// request fills s.req from the head scanHead parsed into s.h.
func (s *reqScratch) request(method, target string, u *url.URL) {
	h := s.h
	host := h["Host"][0] // scanHead saw exactly one
	delete(h, "Host")    // ReadRequest moves it to Request.Host
	s.req = http.Request{
		Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RequestURI: target,
		Close: hasClose(h["Connection"]),
	}
}

// arena holds the text of heads, so their fields are strings without an
// allocation each: a head is copied in once and its strings point into
// the copy. It only ever appends, so the bytes under a string never
// change (what unsafe.String asks) and a string kept past its request
// (a span's attribute) stays right; a full chunk is left to the
// collector, which frees it when no string points into it any more.
type arena struct{ b []byte }

// arenaChunk is the size of a chunk: some tens of common heads.
const arenaChunk = 4 << 10

// keep copies p into the arena and returns it as a string.
func (a *arena) keep(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if cap(a.b)-len(a.b) < len(p) {
		a.b = make([]byte, 0, max(arenaChunk, len(p)))
	}
	i := len(a.b)
	a.b = append(a.b, p...)
	return unsafe.String(&a.b[i], len(p))
}

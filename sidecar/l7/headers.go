package l7

import (
	"net"
	"net/http"
	"strings"
)

// hopHeaders are removed when forwarding (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// outHeaders prepares the forwarded request's headers: hop-by-hop ones
// go (except "TE: trailers", which gRPC needs), X-Forwarded-For gets the
// client's address, X-Forwarded-Proto and -Host are set if absent.
func outHeaders(h http.Header, r *http.Request) { outHeadersInto(h, r, new([3]string)) }

// outHeadersInto is outHeaders with the X-Forwarded-* values set in fwd
// (the HTTP/1.1 path's, one per connection): no allocation per request.
func outHeadersInto(h http.Header, r *http.Request, fwd *[3]string) {
	for _, f := range h["Connection"] {
		for f != "" {
			var name string
			name, f, _ = strings.Cut(f, ",") // not Split: no allocation
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	trailers := false
	for _, v := range h["Te"] {
		if strings.Contains(strings.ToLower(v), "trailers") {
			trailers = true
		}
	}
	for _, k := range hopHeaders {
		delete(h, k) // canonical already: no Del, which canonicalises
	}
	if trailers {
		h["Te"] = []string{"trailers"}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := first(h, "X-Forwarded-For"); prior != "" {
			ip = prior + ", " + ip
		}
		fwd[0] = ip
		h["X-Forwarded-For"] = fwd[0:1:1] // cap 1: an append copies
	}
	if first(h, "X-Forwarded-Proto") == "" {
		fwd[1] = "http"
		h["X-Forwarded-Proto"] = fwd[1:2:2]
	}
	if first(h, "X-Forwarded-Host") == "" && r.Host != "" {
		fwd[2] = r.Host
		h["X-Forwarded-Host"] = fwd[2:3:3]
	}
}

// copyResponseHeaders copies upstream headers minus hop-by-hop ones.
func copyResponseHeaders(dst, src http.Header) {
	for _, f := range src["Connection"] {
		for _, name := range strings.Split(f, ",") {
			src.Del(strings.TrimSpace(name))
		}
	}
	for k, vv := range src {
		dst[k] = append(dst[k][:0], vv...)
	}
	for _, k := range hopHeaders {
		dst.Del(k)
	}
}

// first is Header.Get for a canonical key.
func first(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

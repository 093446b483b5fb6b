package h2

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var errMalformed = errors.New("h2: malformed request")

// request is what a stream's HEADERS said, as far as the proxy needs.
type request struct {
	method, path, authority string
	grpc                    bool
	tooLarge                bool  // header list over the limit: 431
	length                  int64 // content-length, -1 if none
	regular                 []hpack.HeaderField
}

// parseRequest checks a request's HEADERS as RFC 9113 8.3 wants (the
// framer has checked names, values and the pseudo-headers' order).
func parseRequest(f *http2.MetaHeadersFrame) (*request, error) {
	r := &request{length: -1}
	if f.Truncated {
		r.tooLarge = true
		return r, nil
	}
	var scheme string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			r.method = hf.Value
		case ":path":
			r.path = hf.Value
		case ":authority":
			r.authority = hf.Value
		case ":scheme":
			scheme = hf.Value
		default: // :protocol (not enabled) or a response's :status
			return nil, errMalformed
		}
	}
	if r.method == "" || scheme == "" || r.method == "CONNECT" {
		return nil, errMalformed
	}
	if r.path == "" || (r.path[0] != '/' && !(r.path == "*" && r.method == "OPTIONS")) {
		return nil, errMalformed
	}
	r.regular = f.RegularFields()
	if err := checkRegular(r.regular); err != nil {
		return nil, err
	}
	for _, hf := range r.regular {
		switch hf.Name {
		case "content-type":
			r.grpc = strings.HasPrefix(hf.Value, "application/grpc")
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || (r.length >= 0 && r.length != n) {
				return nil, errMalformed
			}
			r.length = n
		case "host":
			if r.authority == "" {
				r.authority = hf.Value
			}
		}
	}
	if f.StreamEnded() && r.length > 0 {
		return nil, errMalformed
	}
	return r, nil
}

// checkRegular refuses connection-specific fields (RFC 9113 8.2.2).
func checkRegular(fs []hpack.HeaderField) error {
	for _, hf := range fs {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return errMalformed
		case "te":
			if hf.Value != "trailers" {
				return errMalformed
			}
		}
	}
	return nil
}

// urlPath is the path routing matches: :path without its query, decoded.
func (r *request) urlPath() string {
	p := r.path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if strings.IndexByte(p, '%') >= 0 {
		if u, err := url.PathUnescape(p); err == nil {
			return u
		}
	}
	return p
}

// header is the request's fields as an http.Header (route matching,
// tracing): built only when asked.
func (r *request) header() http.Header {
	h := make(http.Header, len(r.regular))
	for _, hf := range r.regular {
		k := http.CanonicalHeaderKey(hf.Name)
		h[k] = append(h[k], hf.Value)
	}
	return h
}

// dropOut are request fields not forwarded (hop-by-hop, RFC 9110 7.6.1).
func dropOut(name string) bool {
	switch name {
	case "proxy-authenticate", "proxy-authorization", "trailer", "x-forwarded-for":
		return true
	}
	return false
}

// outFields are the fields sent upstream: as received, minus hop-by-hop
// ones, with X-Forwarded-For, -Proto and -Host as l7's outHeaders sets
// them. traced, when set, replaces the trace context fields.
func (r *request) outFields(remote string, traced http.Header) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(r.regular)+7)
	out = append(out,
		hpack.HeaderField{Name: ":method", Value: r.method},
		hpack.HeaderField{Name: ":scheme", Value: "http"},
		hpack.HeaderField{Name: ":authority", Value: r.authority},
		hpack.HeaderField{Name: ":path", Value: r.path})
	var xff string
	proto, host := false, false
	for _, hf := range r.regular {
		switch hf.Name {
		case "x-forwarded-for":
			if xff == "" {
				xff = hf.Value
			}
		case "x-forwarded-proto":
			proto = true
		case "x-forwarded-host":
			host = true
		case "traceparent", "tracestate":
			if traced != nil {
				continue
			}
		case "host":
			continue // :authority says it
		}
		if !dropOut(hf.Name) {
			out = append(out, hf)
		}
	}
	for _, k := range [...]string{"traceparent", "tracestate"} {
		if v := traced.Get(k); v != "" {
			out = append(out, hpack.HeaderField{Name: k, Value: v})
		}
	}
	if ip, _, err := net.SplitHostPort(remote); err == nil {
		if xff != "" {
			ip = xff + ", " + ip
		}
		out = append(out, hpack.HeaderField{Name: "x-forwarded-for", Value: ip})
	} else if xff != "" {
		out = append(out, hpack.HeaderField{Name: "x-forwarded-for", Value: xff})
	}
	if !proto {
		out = append(out, hpack.HeaderField{Name: "x-forwarded-proto", Value: "http"})
	}
	if !host && r.authority != "" {
		out = append(out, hpack.HeaderField{Name: "x-forwarded-host", Value: r.authority})
	}
	return out
}

// respFields filters an upstream's response fields for the client:
// connection-specific and hop-by-hop ones go. It reads :status and
// grpc-status on the way.
func respFields(fs []hpack.HeaderField) (out []hpack.HeaderField, status int, grpcStatus string) {
	out = make([]hpack.HeaderField, 0, len(fs))
	for _, hf := range fs {
		switch hf.Name {
		case ":status":
			status, _ = strconv.Atoi(hf.Value)
		case "grpc-status":
			grpcStatus = hf.Value
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
			"proxy-authenticate", "proxy-authorization", "trailer":
			continue
		}
		if strings.HasPrefix(hf.Name, ":") && hf.Name != ":status" {
			continue
		}
		out = append(out, hf)
	}
	return out, status, grpcStatus
}

package l7

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"strings"
)

// readRequestHead parses the common client request straight from br's
// buffer: an HTTP/1.1 request without a body (no Content-Length, no
// Transfer-Encoding), origin-form target, one Host, no Pragma, every byte
// strictly valid, the whole head already read. It yields what
// http.ReadRequest would, without a textproto reader. Anything else
// returns nil, nil with nothing consumed, and http.ReadRequest takes it,
// so every request with a body or an odd head meets net/http's own
// checks (smuggling defences included). The Request, its Header and the
// values' backing array come from s: the connection's, reused for each
// of its requests (one at a time), so they are not allocated again.
func readRequestHead(br *bufio.Reader, s *reqScratch) (*http.Request, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, err // what ReadRequest returns for a first line that fails
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		return nil, nil
	}
	all := string(buf[:end+2]) // one copy; every field is a slice of it
	i := strings.Index(all, "\r\n")
	method, rest, ok1 := strings.Cut(all[:i], " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || method == "" || method == http.MethodConnect || len(target) == 0 || target[0] != '/' {
		return nil, nil
	}
	for j := 0; j < len(method); j++ {
		if c := method[j]; c < 'A' || c > 'Z' {
			return nil, nil
		}
	}
	for j := 0; j < len(target); j++ {
		if c := target[j]; c <= ' ' || c >= 0x7f {
			return nil, nil
		}
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, nil
	}
	n := strings.Count(all, "\r\n") - 1
	if s.h == nil {
		s.h = make(http.Header, n)
	}
	h := s.h
	clear(h)
	if cap(s.vals) < n {
		s.vals = make([]string, n)
	}
	vals := s.vals[:n] // one backing array, as textproto does
	for rest := all[i+2:]; len(rest) > 0; {
		key, v, tail, ok := nextField(rest)
		if !ok {
			return nil, nil
		}
		rest = tail
		switch key {
		case "Content-Length", "Transfer-Encoding", "Pragma", "Trailer":
			return nil, nil // a body, or what ReadRequest rewrites
		case "Host":
			if _, dup := h[key]; dup {
				return nil, nil
			}
		}
		vals = addValue(h, key, v, vals)
	}
	host, ok := h["Host"]
	if !ok {
		return nil, nil
	}
	delete(h, "Host") // ReadRequest moves it to Request.Host
	br.Discard(end + 4)
	s.req = http.Request{
		Method: method, URL: u, Proto: proto, ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host[0], RequestURI: target,
		Close: hasClose(h["Connection"]),
	}
	return &s.req, nil
}

// reqScratch is what readRequestHead reuses on one connection.
type reqScratch struct {
	req  http.Request
	h    http.Header
	vals []string
}

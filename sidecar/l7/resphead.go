package l7

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"unsafe"
)

// readHead parses the common upstream answer straight from uc's buffer:
// an HTTP/1.1 final status (200-599 but 204 and 304) with exactly one
// Content-Length above 0, no Transfer-Encoding, no Pragma, every byte
// strictly valid, the whole head already read. It yields what
// http.ReadResponse would (the same Header, Status, Close, framing) with
// no textproto reader and, on a kept-alive connection, no allocation
// (the Response, its Header and text live in uc, one answer at a time).
// Anything else returns nil with nothing consumed, and http.ReadResponse
// takes it, errors and all.
func readHead(uc *upConn, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	buf, _ := uc.r.Peek(uc.r.Buffered())
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		return nil
	}
	head := buf[:end+2] // every line with its CRLF
	i := bytes.Index(head, crlf)
	status := head[:i]
	// "HTTP/1.1 200 OK": one space, three digits, a space or nothing.
	if len(status) < 12 || string(status[:9]) != "HTTP/1.1 " || len(status) > 12 && status[12] != ' ' {
		return nil
	}
	code := atoi3(string(status[9:12]))
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	for _, c := range status[12:] {
		if !validValueByte(c) {
			return nil
		}
	}
	all := uc.text(head) // status, keys and values are slices of it
	n := strings.Count(all, "\r\n") - 1
	if uc.h == nil {
		uc.h = make(http.Header, n)
	}
	h := uc.h // the last answer's: it was written out whole before this
	clear(h)
	if cap(uc.vals) < n {
		uc.vals = make([]string, n)
	}
	vals := uc.vals[:n] // one backing array, as textproto does
	cl := int64(-1)
	for rest := all[i+2:]; len(rest) > 0; {
		key, v, tail, ok := nextField(rest)
		if !ok {
			return nil
		}
		rest = tail
		switch key {
		case "Transfer-Encoding", "Pragma":
			return nil // framing ReadResponse owns; Pragma it rewrites
		case "Content-Length":
			if cl >= 0 {
				return nil
			}
			if cl = parseLength(v); cl <= 0 {
				return nil
			}
		}
		vals = addValue(h, key, v, vals)
	}
	if cl <= 0 {
		return nil
	}
	closing := hasClose(h["Connection"])
	if closing {
		delete(h, "Connection") // as ReadResponse does
	}
	uc.resp = http.Response{
		Status: all[9:i], StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: &uc.body, ContentLength: cl,
		Close: closing, Request: req,
	}
	uc.r.Discard(len(head) + 2) // status and h are copies: buf may go now
	uc.body = lengthBody{r: uc.r, n: cl}
	return &uc.resp
}

// text copies an answer's head into uc's buffer, reused from answer to
// answer, and returns it as a string: an answer is written out whole
// before the next is read on uc, and nothing keeps its strings past that
// (a request's may stay in a span: those go to an arena, reqhead.go).
func (uc *upConn) text(p []byte) string {
	uc.head = append(uc.head[:0], p...)
	return unsafe.String(unsafe.SliceData(uc.head), len(uc.head))
}

var (
	crlf  = []byte("\r\n")
	crlf2 = []byte("\r\n\r\n")
)

// lengthBody is a Content-Length body read from the upstream's buffer;
// it lives in its upConn, one answer at a time, so none is allocated.
type lengthBody struct {
	r *bufio.Reader
	n int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }

// parseLength reads a Content-Length value: digits only (-1: not one).
func parseLength(v string) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// commonKeys avoids allocating the names most answers carry.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Content-Type", "Content-Length", "Date", "Server", "Connection", "Keep-Alive",
		"Cache-Control", "Etag", "Last-Modified", "Expires", "Vary", "Set-Cookie", "Location",
		"Content-Encoding", "Accept-Ranges", "Age", "X-Content-Type-Options", "Access-Control-Allow-Origin",
		"Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Cookie", "Referer",
		"Authorization", "Origin", "X-Forwarded-For", "X-Request-Id", "If-None-Match", "If-Modified-Since"} {
		m[k] = k
	}
	return m
}()

// canonicalKey is textproto's canonical form of a valid token.
// nextField takes the first field line off rest (each line ends in CRLF)
// and returns its canonical key and trimmed value; ok is false for a line
// a fast path leaves to net/http: no colon, an empty or non-token key, a
// value byte net/http would reject.
func nextField(rest string) (key, value, tail string, ok bool) {
	j := strings.Index(rest, "\r\n")
	line, tail := rest[:j], rest[j+2:]
	k, v, found := strings.Cut(line, ":")
	if !found || len(k) == 0 {
		return "", "", tail, false
	}
	for i := 0; i < len(k); i++ {
		if !tokenByte(k[i]) {
			return "", "", tail, false
		}
	}
	for i := 0; i < len(v); i++ {
		if !validValueByte(v[i]) {
			return "", "", tail, false
		}
	}
	return canonicalKey(k), trimBlank(v), tail, true
}

// addValue adds v under key; a key's first value comes from vals, one
// backing array for the whole head (as textproto does). It returns what
// is left of vals.
func addValue(h http.Header, key, v string, vals []string) []string {
	if vv, ok := h[key]; ok {
		h[key] = append(vv, v)
		return vals
	}
	vals[0] = v
	h[key] = vals[:1:1]
	return vals[1:]
}

func canonicalKey(k string) string {
	if s, ok := commonKeys[k]; ok {
		return s
	}
	return http.CanonicalHeaderKey(k) // k itself when already canonical
}

// tokenByte: RFC 9110 tchar.
func tokenByte(c byte) bool { return tchar[c] }

var tchar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// trimBlank drops spaces and tabs around a field value, as textproto does.
func trimBlank(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validValueByte: VCHAR, SP, HTAB; obs-text too is left to ReadResponse.
func validValueByte(c byte) bool { return c == '\t' || ' ' <= c && c <= '~' }

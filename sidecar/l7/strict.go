package l7

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
)

// Every request head is checked here, byte by byte, before either parser
// (readRequestHead or http.ReadRequest) sees it: http.ReadRequest alone
// is more lenient than net/http's server (which checks names, values and
// Host after it) and than RFC 9112, and whatever it lets through reaches
// the app verbatim, a request smuggling vector (issue 17: "Content-Length
// : 32" became a header the app read as framing). What passes here is a
// subset of what net/http's server takes (FuzzStrictHead checks it):
//
//   - every line ends in CRLF: no bare LF, no CR elsewhere;
//   - request line: token method, one SP, a target of visible ASCII (no
//     '#') in origin-form, absolute-form (http/https), or "*" for
//     OPTIONS; one SP, HTTP/1.1 or HTTP/1.0. CONNECT is refused (405):
//     the sidecar is no tunnel;
//   - field lines: a token name directly followed by ':' (RFC 9112 §5.1),
//     no obs-fold, values of VCHAR, SP, HTAB and obs-text only;
//   - at most one Content-Length, of digits; at most one
//     Transfer-Encoding, exactly "chunked", never with Content-Length and
//     never in HTTP/1.0;
//   - exactly one valid Host in HTTP/1.1, at most one in HTTP/1.0;
//   - the head fits in maxHead.

// maxHead bounds a request head (Envoy's default is 60 KiB, nginx's 4
// buffers of 8 KiB): a connection's reader is 16 KiB and grows to this
// only for a head that needs it.
const maxHead = 64 << 10

// headError is a refused head: the status to answer and why.
type headError struct {
	code int
	msg  string
}

func (e *headError) Error() string { return e.msg }

func badHead(msg string) error { return &headError{http.StatusBadRequest, msg} }

// peekHead waits until *br holds a whole request head and returns its
// length, through the empty line; nothing is consumed. A head that
// outgrows *br's buffer moves to a maxHead one (it reads from lr, the
// connection); one larger than maxHead is a 431. A line that does not end
// in CRLF is refused as soon as it is seen, whether or not the rest came.
func peekHead(br **bufio.Reader, lr io.Reader) (int, error) {
	scanned := 0 // bytes of whole lines already checked
	for {
		b := *br
		buf, _ := b.Peek(b.Buffered())
		for {
			j := bytes.IndexByte(buf[scanned:], '\n')
			if j < 0 {
				break
			}
			j += scanned
			if j == scanned || buf[j-1] != '\r' {
				return 0, badHead("bare LF")
			}
			if j == scanned+1 { // an empty line
				if scanned == 0 {
					return 0, badHead("empty request line")
				}
				return j + 1, nil
			}
			scanned = j + 1
		}
		if len(buf) >= maxHead {
			return 0, &headError{http.StatusRequestHeaderFieldsTooLarge, "request head too large"}
		}
		if len(buf) == b.Size() {
			// Rare: carry what was read over to a reader big enough.
			kept := bytes.Clone(buf)
			*br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(kept), lr), maxHead)
			b = *br
		}
		if _, err := b.Peek(len(buf) + 1); err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}

// checkRequestHead checks head (peekHead's, through the empty line) as
// the package comment says.
func checkRequestHead(head []byte) error {
	i := bytes.Index(head, crlf)
	line := head[:i]
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return badHead("malformed request line")
	}
	method := line[:sp]
	for _, c := range method {
		if !tchar[c] {
			return badHead("invalid method")
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return badHead("malformed request line")
	}
	target, proto := rest[:sp], rest[sp+1:]
	var http10 bool
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		return badHead("unsupported protocol version")
	}
	if string(method) == http.MethodConnect {
		return &headError{http.StatusMethodNotAllowed, "CONNECT is not supported"}
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return badHead("invalid request target")
		}
	}
	switch {
	case target[0] == '/': // origin-form
	case string(target) == "*":
		if string(method) != http.MethodOptions {
			return badHead("asterisk-form is for OPTIONS only")
		}
	case hasPrefixFold(target, "http://") || hasPrefixFold(target, "https://"):
	default:
		return badHead("invalid request target")
	}
	var cl, te, host int
	for rest := head[i+2:]; len(rest) > 2; {
		j := bytes.Index(rest, crlf)
		line := rest[:j]
		rest = rest[j+2:]
		if line[0] == ' ' || line[0] == '\t' {
			return badHead("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return badHead("malformed header line")
		}
		name, value := line[:colon], line[colon+1:]
		for _, c := range name {
			if !tchar[c] {
				return badHead("invalid header name")
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return badHead("invalid header value")
			}
		}
		v := bytes.Trim(value, " \t")
		switch {
		case equalFold(name, "Content-Length"):
			if cl++; cl > 1 {
				return badHead("more than one Content-Length")
			}
			if parseLength(string(v)) < 0 {
				return badHead("invalid Content-Length")
			}
		case equalFold(name, "Transfer-Encoding"):
			if te++; te > 1 || !equalFold(v, "chunked") {
				return badHead("unsupported Transfer-Encoding")
			}
		case equalFold(name, "Host"):
			if host++; host > 1 {
				return badHead("more than one Host")
			}
			if !validHost(v) {
				return badHead("invalid Host")
			}
		}
	}
	switch {
	case te > 0 && cl > 0:
		return badHead("both Transfer-Encoding and Content-Length")
	case te > 0 && http10:
		return badHead("Transfer-Encoding in HTTP/1.0")
	case host == 0 && !http10:
		return badHead("missing Host")
	}
	return nil
}

var errBadResponse = errors.New("upstream answer: invalid header field")

// clientBody remembers an error reading the client's request body (a
// malformed chunk, the client gone mid-body), so it is not taken for the
// upstream's failure: before, a bad chunk was a 502 and an outlier
// report against a healthy endpoint.
type clientBody struct {
	rc  io.ReadCloser
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Close does not close (drain) the request body: the body is sent whole
// before the answer is read, so what is left after an error is never
// read (the connection closes), and net/http's body would read it all,
// however large or slow, to reach its end.
func (b *clientBody) Close() error { return nil }

// checkHeader reports whether every name in h is a token and every value
// free of control characters but HTAB: an upstream's answer (or trailer)
// read by net/http may hold names it took but never checked ("X : y"),
// which would otherwise reach the client as they came.
func checkHeader(h http.Header) bool {
	for k, vv := range h {
		if k == "" {
			return false
		}
		for i := 0; i < len(k); i++ {
			if !tchar[k[i]] {
				return false
			}
		}
		for _, v := range vv {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
					return false
				}
			}
		}
	}
	return true
}

// equalFold is ASCII case-insensitive equality of b and s.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) > len(prefix) && equalFold(b[:len(prefix)], prefix)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// validHost is httpguts.ValidHostHeader: the bytes a host, IP literal
// and port may hold (and a few more, as net/http takes them).
func validHost(h []byte) bool {
	for _, c := range h {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

var hostByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			bytes.IndexByte([]byte("!$%&'()*+,-.:;=[]_~"), byte(c)) >= 0
	}
	return t
}()

package l7

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
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
// length, through the empty line; nothing is consumed. ends gets the
// index of each line's LF (the empty line's last), so that no later step
// looks for them again. A head that outgrows *br's buffer moves to a
// maxHead one (it reads from lr, the connection); one larger than maxHead
// is a 431. A line that does not end in CRLF is refused as soon as it is
// seen, whether or not the rest came.
func peekHead(br **bufio.Reader, lr io.Reader, ends *[]int) (int, error) {
	scanned := 0 // bytes of whole lines already checked
	*ends = (*ends)[:0]
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
			*ends = append(*ends, j)
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

// scanHead checks head (ends: peekHead's) as the package comment says,
// in one pass over its bytes. Given s, it parses the common request on
// the way (see readRequestHead) into s and says so (fast); any other is
// left to http.ReadRequest. With s nil, head need not outlive the call.
func scanHead(head string, ends []int, s *reqScratch) (fast bool, err error) {
	line := head[:ends[0]-1]
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return false, badHead("malformed request line")
	}
	method := line[:sp]
	upper := true
	for i := 0; i < len(method); i++ {
		c := method[i]
		if !tchar[c] {
			return false, badHead("invalid method")
		}
		upper = upper && 'A' <= c && c <= 'Z'
	}
	rest := line[sp+1:]
	sp = strings.IndexByte(rest, ' ')
	if sp <= 0 {
		return false, badHead("malformed request line")
	}
	target, proto := rest[:sp], rest[sp+1:]
	var http10 bool
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		return false, badHead("unsupported protocol version")
	}
	if method == http.MethodConnect {
		return false, &headError{http.StatusMethodNotAllowed, "CONNECT is not supported"}
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false, badHead("invalid request target")
		}
	}
	switch {
	case target[0] == '/': // origin-form
	case target == "*":
		if method != http.MethodOptions {
			return false, badHead("asterisk-form is for OPTIONS only")
		}
	case hasPrefixFold(target, "http://") || hasPrefixFold(target, "https://"):
	default:
		return false, badHead("invalid request target")
	}
	// The fast parse takes an HTTP/1.1 origin-form request with no body
	// and nothing ReadRequest would rewrite (see readRequestHead).
	fast = s != nil && upper && !http10 && target[0] == '/'
	var u *url.URL
	if fast {
		u = s.url(target)
		fast = u != nil
	}
	var vals []string
	if fast {
		vals = s.fields(len(ends) - 2)
	}
	var cl, te, host int
	from := ends[0] + 1
	for _, e := range ends[1 : len(ends)-1] {
		line := head[from : e-1]
		from = e + 1
		if line[0] == ' ' || line[0] == '\t' {
			return false, badHead("obsolete line folding")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return false, badHead("malformed header line")
		}
		name, value := line[:colon], line[colon+1:]
		for i := 0; i < len(name); i++ {
			if !tchar[name[i]] {
				return false, badHead("invalid header name")
			}
		}
		obsText := false
		for i := 0; i < len(value); i++ {
			c := value[i]
			if c < ' ' && c != '\t' || c == 0x7f {
				return false, badHead("invalid header value")
			}
			obsText = obsText || c >= 0x80
		}
		v := trimBlank(value)
		switch {
		case equalFold(name, "Content-Length"):
			if cl++; cl > 1 {
				return false, badHead("more than one Content-Length")
			}
			if parseLength(v) < 0 {
				return false, badHead("invalid Content-Length")
			}
			fast = false
		case equalFold(name, "Transfer-Encoding"):
			if te++; te > 1 || !equalFold(v, "chunked") {
				return false, badHead("unsupported Transfer-Encoding")
			}
			fast = false
		case equalFold(name, "Host"):
			if host++; host > 1 {
				return false, badHead("more than one Host")
			}
			if !validHost(v) {
				return false, badHead("invalid Host")
			}
		case equalFold(name, "Pragma") || equalFold(name, "Trailer"):
			fast = false // what ReadRequest rewrites
		}
		if fast && !obsText { // obs-text: left to ReadRequest's rules
			vals = addValue(s.h, canonicalKey(name), v, vals)
		} else {
			fast = false
		}
	}
	switch {
	case te > 0 && cl > 0:
		return false, badHead("both Transfer-Encoding and Content-Length")
	case te > 0 && http10:
		return false, badHead("Transfer-Encoding in HTTP/1.0")
	case host == 0 && !http10:
		return false, badHead("missing Host")
	}
	if fast {
		s.request(method, target, u)
	}
	return fast, nil
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

// equalFold is ASCII case-insensitive equality of b and s (not
// strings.EqualFold: Unicode folding would take "chun\u212aed").
func equalFold(b, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func hasPrefixFold(b, prefix string) bool {
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
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostByte[h[i]] {
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

package l7

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// The common request and response heads are written straight into the
// connection's buffer. Request.Write and Response.Write spent ~13 % of a
// request's CPU (a transferWriter, a sorted copy of the headers, fmt) on
// bytes that are fixed; anything uncommon (chunked, trailers, HEAD,
// CONNECT, an odd Host) still goes through them. What is written here is
// what they would write, but for the order of the other header fields.

// plainHost reports whether Request.Write would send host unchanged: ASCII
// (no punycode), valid as a Host header, no IPv6 zone.
func plainHost(host string) bool {
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// fastRequest reports whether writeRequest can frame req: a body of known
// length (maybe none), no trailers, not CONNECT.
func fastRequest(req *http.Request) bool {
	return req.ContentLength >= 0 && len(req.TransferEncoding) == 0 && req.Trailer == nil &&
		req.Method != http.MethodConnect && plainHost(req.Host)
}

var errCTL = errors.New("net/http: can't write control character in Request.URL")

// headOut writes into a connection's buffer and counts what it wrote.
type headOut struct {
	w *bufio.Writer
	n int64
}

func (o *headOut) str(s string) { m, _ := o.w.WriteString(s); o.n += int64(m) }

func (o *headOut) Write(p []byte) (int, error) {
	m, err := o.w.Write(p)
	o.n += int64(m)
	return m, err
}

func (o *headOut) int(v int64) {
	o.Write(strconv.AppendInt(o.w.AvailableBuffer(), v, 10)) // no allocation
}

// field writes "k: v\r\n" as Header.Write does: CR and LF in v become
// spaces, surrounding spaces and tabs are trimmed.
func (o *headOut) field(k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
	}
	o.str(k)
	o.str(": ")
	o.str(trimSpace(v))
	o.str("\r\n")
}

// writeRequest writes req (fastRequest said yes) to w: the head, then
// Content-Length bytes of body, streamed through w's buffer.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	ruri := req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if c := ruri[i]; c < ' ' || c == 0x7f {
			return errCTL
		}
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	o := &headOut{w: w}
	o.str(method)
	o.str(" ")
	o.str(ruri)
	o.str(" HTTP/1.1\r\nHost: ")
	o.str(req.Host)
	o.str("\r\n")
	if ua, ok := req.Header["User-Agent"]; !ok {
		o.str("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		o.field("User-Agent", ua[0]) // Request.Write sends the first only
	}
	if req.Close {
		o.str("Connection: close\r\n")
	}
	cl := req.ContentLength
	if req.Body == nil || req.Body == http.NoBody {
		cl = 0
	}
	if cl > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		o.str("Content-Length: ") // Request.Write sends 0 for these methods
		o.int(cl)
		o.str("\r\n")
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv {
			o.field(k, v)
		}
	}
	_, err := w.WriteString("\r\n")
	if err == nil && cl > 0 {
		_, err = copyBody(w, req.Body, cl)
	}
	if req.Body != nil {
		if cerr := req.Body.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// fastResponse reports whether writeResponse can frame resp: a body of
// known, non-zero length on a status that allows one, not to HEAD, no
// trailers.
func fastResponse(resp *http.Response) bool {
	return resp.ContentLength > 0 && len(resp.TransferEncoding) == 0 && resp.Trailer == nil &&
		resp.Request != nil && resp.Request.Method != http.MethodHead &&
		resp.StatusCode >= 200 && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified
}

// writeResponse writes resp (fastResponse said yes) to w, head and body,
// and returns the bytes written. resp.Close asks for "Connection: close".
func writeResponse(w *bufio.Writer, resp *http.Response) (int64, error) {
	o := &headOut{w: w}
	o.str("HTTP/")
	o.int(int64(resp.ProtoMajor))
	o.str(".")
	o.int(int64(resp.ProtoMinor))
	o.str(" ")
	if s := resp.Status; len(s) > 4 && s[3] == ' ' && atoi3(s) == resp.StatusCode {
		o.str(s) // "200 OK": what Response.Write would rebuild from it
	} else {
		text := resp.Status
		if text == "" {
			text = http.StatusText(resp.StatusCode)
			if text == "" {
				text = "status code " + strconv.Itoa(resp.StatusCode)
			}
		} else {
			text = strings.TrimPrefix(text, strconv.Itoa(resp.StatusCode)+" ")
		}
		o.str(fmt.Sprintf("%03d %s", resp.StatusCode, text)) // o stays on the stack
	}
	o.str("\r\n")
	if resp.Close && !hasClose(resp.Header["Connection"]) {
		o.str("Connection: close\r\n")
	}
	o.str("Content-Length: ")
	o.int(resp.ContentLength)
	o.str("\r\n")
	for k, vv := range resp.Header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv {
			o.field(k, v)
		}
	}
	o.str("\r\n")
	n, err := copyBody(w, resp.Body, resp.ContentLength)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return o.n + n, err
}

// copyBody copies exactly n bytes of body to w, read straight into w's
// free buffer space (no copy buffer), flushing as it fills, so a large
// body is never held whole. Fewer bytes is an error, as in Request.Write
// and Response.Write.
func copyBody(w *bufio.Writer, body io.Reader, n int64) (int64, error) {
	var done int64
	for done < n {
		if w.Available() == 0 {
			if err := w.Flush(); err != nil {
				return done, err
			}
		}
		buf := w.AvailableBuffer()[:w.Available()]
		if int64(len(buf)) > n-done {
			buf = buf[:n-done]
		}
		m, err := body.Read(buf)
		w.Write(buf[:m]) // buf is w's own free space: this only advances it
		done += int64(m)
		if err == io.EOF && done < n {
			return done, fmt.Errorf("http: ContentLength=%d with Body length %d", n, done)
		}
		if err != nil && err != io.EOF {
			return done, err
		}
	}
	return done, nil
}

func hasClose(vv []string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",") // not Split: no allocation
			if strings.EqualFold(strings.TrimSpace(t), "close") {
				return true
			}
		}
	}
	return false
}

// atoi3 reads the three digits a status line starts with (-1: not digits).
func atoi3(s string) int {
	n := 0
	for i := range 3 {
		c := s[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// trimSpace is textproto.TrimString: ASCII space, tab, CR, LF.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

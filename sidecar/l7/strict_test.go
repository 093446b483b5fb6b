package l7

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
)

// strictCase is one request stream sent to the HTTP/1.1 fast path: the
// statuses the client must get back and how many requests the app must
// see (0: nothing reaches it). Every case is also a FuzzH1 and
// FuzzStrictHead seed.
type strictCase struct {
	name   string
	raw    string
	status []int
	app    int
}

const big = "Host: x\r\nX-Big: "

var strictCases = []strictCase{
	// Issue 17's vector: whitespace before the colon (RFC 9112 §5.1).
	{"space before colon", "POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length : 32\r\n\r\nGET /smugX HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"tab before colon", "POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length\t: 5\r\n\r\nhello", []int{400}, 0},
	{"space in name", "GET / HTTP/1.1\r\nHost: x\r\nX Y: 1\r\n\r\n", []int{400}, 0},
	{"non-token name", "GET / HTTP/1.1\r\nHost: x\r\nX@Y: 1\r\n\r\n", []int{400}, 0},
	{"NUL in name", "GET / HTTP/1.1\r\nHost: x\r\nX\x00Y: 1\r\n\r\n", []int{400}, 0},
	{"obs-text in name", "GET / HTTP/1.1\r\nHost: x\r\nX\x80: 1\r\n\r\n", []int{400}, 0},
	{"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n", []int{400}, 0},
	{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nFoo\r\n\r\n", []int{400}, 0},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", []int{400}, 0},
	{"obs-fold of CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 3\r\n\r\nabc", []int{400}, 0},
	{"space before first field", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", []int{400}, 0},
	{"duplicate CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", []int{400}, 0},
	{"conflicting CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", []int{400}, 0},
	{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", []int{400}, 0},
	{"CL sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", []int{400}, 0},
	{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc", []int{400}, 0},
	{"CL empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", []int{400}, 0},
	{"CL huge", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", []int{400}, 0},
	{"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc", []int{400}, 0},
	{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", []int{400}, 0},
	{"TE chunked twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}, 0},
	{"TE chunked, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", []int{400}, 0},
	{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smug HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX", []int{400}, 0},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", []int{400}, 0},
	{"TE vertical tab", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \vchunked\r\n\r\n0\r\n\r\n", []int{400}, 0},
	{"bare LF everywhere", "GET / HTTP/1.1\nHost: x\n\n", []int{400}, 0},
	{"bare LF in a field", "GET / HTTP/1.1\r\nHost: x\r\nX: a\nContent-Length: 3\r\n\r\nabc", []int{400}, 0},
	{"bare LF ends the head", "GET / HTTP/1.1\r\nHost: x\r\n\n", []int{400}, 0},
	{"bare CR in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", []int{400}, 0},
	{"NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", []int{400}, 0},
	{"DEL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n", []int{400}, 0},
	{"CTL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", []int{400}, 0},
	{"empty line first", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"no Host", "GET / HTTP/1.1\r\n\r\n", []int{400}, 0},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []int{400}, 0},
	{"bad Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", []int{400}, 0},
	{"fragment", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"8-bit target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"DEL in target", "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"authority-form GET", "GET x:1 HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"asterisk GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"CONNECT", "CONNECT x:1 HTTP/1.1\r\nHost: x:1\r\n\r\n", []int{405}, 0},
	{"scheme-relative", "GET //evil/x HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}, 1},
	{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"tab separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", []int{400}, 0},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"non-token method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, 0},
	{"head too large", "GET / HTTP/1.1\r\n" + big + strings.Repeat("a", maxHead) + "\r\n\r\n", []int{431}, 0},
	// What is taken, and how much of it reaches the app.
	{"plain", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}, 1},
	{"body then pipelined", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n", []int{200, 200}, 2},
	{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", []int{200}, 1},
	{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}, 1},
	{"absolute-form", "GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}, 1},
	{"obs-text in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: \xe9t\xe9\r\n\r\n", []int{200}, 1},
	{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", []int{200}, 1},
	{"tab in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\tb\r\n\r\n", []int{200}, 1},
	{"large head", "GET / HTTP/1.1\r\n" + big + strings.Repeat("a", 40<<10) + "\r\n\r\n", []int{200}, 1},
	{"accepted then rejected", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n", []int{200, 400}, 1},
}

// recorder is the app's listener: every byte the app reads is kept.
type recorder struct {
	net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Accept() (net.Conn, error) {
	c, err := r.Listener.Accept()
	return recConn{c, r}, err
}

func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.buf.String()
	r.buf.Reset()
	return s
}

type recConn struct {
	net.Conn
	r *recorder
}

func (c recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.mu.Lock()
	c.r.buf.Write(p[:n])
	c.r.mu.Unlock()
	return n, err
}

// exchange sends raw on a new connection, half-closes it and reads every
// answer until the sidecar closes.
func exchange(t *testing.T, addr, raw string) []int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		c.Write([]byte(raw))
		c.(*net.TCPConn).CloseWrite()
	}()
	br := bufio.NewReader(c)
	var codes []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("reading the answers: %v", err)
			}
			return codes
		}
		io.Copy(io.Discard, resp.Body)
		codes = append(codes, resp.StatusCode)
	}
}

// TestStrictHeads: every head net/http would refuse, and the ones it
// takes but reads differently from some other parser, are refused
// before any byte reaches the app; what is taken reaches it as sent.
func TestStrictHeads(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Listener: l}
	app := serveHTTP(t, rec, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	}))
	counters := &stats.Counters{}
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: counters, BodyLimit: 1 << 10}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute)
	addr := serveH1(t, s)
	for _, tc := range strictCases {
		t.Run(tc.name, func(t *testing.T) {
			codes := exchange(t, addr, tc.raw)
			got := rec.take()
			if n := countRequests(got); n != tc.app {
				t.Errorf("the app read %d requests, want %d: %.300q", n, tc.app, got)
			}
			if len(codes) != len(tc.status) {
				t.Fatalf("answers %v, want %v", codes, tc.status)
			}
			for i := range codes {
				if codes[i] != tc.status[i] {
					t.Fatalf("answers %v, want %v", codes, tc.status)
				}
			}
			if strings.Contains(got, "smug") {
				t.Errorf("a smuggled request reached the app: %.300q", got)
			}
		})
	}
	if counters.Failures[stats.BadFrame].Load() == 0 {
		t.Error("refused heads not counted as bad_frame")
	}
}

// countRequests counts the request lines the app read.
func countRequests(s string) int {
	n := 0
	for _, line := range strings.Split(s, "\r\n") {
		if strings.HasSuffix(line, " HTTP/1.1") && strings.Contains(line, " ") && !strings.Contains(line, ":") {
			n++
		}
	}
	return n
}

// FuzzStrictHead is a differential fuzz against net/http's server: a head
// the sidecar takes must be one net/http's server takes too (its handler
// is called), read the same way (method, target, Host, framing).
func FuzzStrictHead(f *testing.F) {
	for _, tc := range strictCases {
		f.Add([]byte(tc.raw))
	}
	type seen struct {
		method, uri, host string
		length            int64
		te                []string
	}
	got := make(chan seen, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	addr := serveHTTP(f, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- seen{r.Method, r.RequestURI, r.Host, r.ContentLength, r.TransferEncoding}:
		default: // a later request of the same input
		}
		io.Copy(io.Discard, r.Body)
	}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		src := bytes.NewReader(raw)
		br := bufio.NewReaderSize(src, 16<<10)
		req, err := (&H1{}).readRequest(&br, src, &reqScratch{})
		if err != nil {
			return // refused, or not whole: nothing to compare
		}
		select {
		case <-got:
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT: a fuzz run opens 100k of them
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write(raw)
			c.(*net.TCPConn).CloseWrite()
		}()
		answer, _ := io.ReadAll(c)
		if req.RequestURI == "*" { // OPTIONS *: net/http answers it itself
			if !bytes.HasPrefix(answer, []byte("HTTP/1.1 200 ")) && !bytes.HasPrefix(answer, []byte("HTTP/1.0 200 ")) {
				t.Fatalf("%q: net/http answers %.40q", raw, answer)
			}
			return
		}
		var s seen
		select {
		case s = <-got:
		default:
			t.Fatalf("%q: the sidecar takes a head net/http's server refuses", raw)
		}
		if s.method != req.Method || s.uri != req.RequestURI || s.host != req.Host ||
			s.length != req.ContentLength || len(s.te) != len(req.TransferEncoding) {
			t.Fatalf("%q: the sidecar reads %s %s host %q length %d te %v; net/http %+v",
				raw, req.Method, req.RequestURI, req.Host, req.ContentLength, req.TransferEncoding, s)
		}
	})
}

// BenchmarkCheckRequestHead: what the strict check adds to each request
// (a browser-like head of 8 fields).
func BenchmarkCheckRequestHead(b *testing.B) {
	raw := []byte("GET /api/v1/items?page=2 HTTP/1.1\r\nHost: shop.internal:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en-GB,en;q=0.9\r\n" +
		"Cookie: session=0123456789abcdef; theme=dark\r\nX-Request-Id: 5b1c8d2e-3f4a-4b6c-9d7e-8f9a0b1c2d3e\r\nConnection: keep-alive\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	rd := bytes.NewReader(raw)
	br := bufio.NewReaderSize(rd, 16<<10)
	var s reqScratch
	for b.Loop() {
		rd.Reset(raw)
		br.Reset(rd)
		n, err := peekHead(&br, nil, &s.ends)
		if err != nil {
			b.Fatal(err)
		}
		// The check and the parse: one pass (the check alone is most of it).
		if req, err := s.take(br, n); req == nil || err != nil {
			b.Fatal(req, err)
		}
	}
}

// TestStrictUpstreamAnswer: an answer whose header names net/http's
// client takes without checking ("X : y", "Content-Length : 9") is not
// passed on to the client as it came: a 502 instead.
func TestStrictUpstreamAnswer(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length : 9\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX\t: y\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for line, err := br.ReadString('\n'); err == nil && line != "\r\n"; line, err = br.ReadString('\n') {
			}
			c.Write([]byte(answer))
		}()
		s := NewServer(&net.TCPAddr{}, &H1{Target: l.Addr().String(), Listener: &stats.Counters{}}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute)
		addr := serveH1(t, s)
		if codes := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); len(codes) != 1 || codes[0] != http.StatusBadGateway {
			t.Errorf("%q: answers %v, want [502]", answer, codes)
		}
	}
}

// TestStrictBadChunks: a malformed chunked body is the client's fault: a
// 400, counted bad_frame, the upstream connection dropped, and no
// failure counted against the upstream (a 502 and an outlier report
// before). Bodies are streamed, so the app has seen the head by then.
func TestStrictBadChunks(t *testing.T) {
	app := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	}))
	counters := &stats.Counters{}
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: counters}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute)
	addr := serveH1(t, s)
	const head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	bodies := []string{
		"5\nhello\n0\n\n",              // bare LF
		"5 ;a=b\r\nhello\r\n0\r\n\r\n", // space before the extension
		"5\r\nhelloXX0\r\n\r\n",        // no CRLF after the data
		"z\r\nhello\r\n0\r\n\r\n",      // not hex
	}
	for _, b := range bodies {
		if codes := exchange(t, addr, head+b); len(codes) != 1 || codes[0] != http.StatusBadRequest {
			t.Errorf("%q: answers %v, want [400]", b, codes)
		}
	}
	if got := counters.Failures[stats.BadFrame].Load(); got != uint64(len(bodies)) {
		t.Errorf("bad_frame %d, want %d", got, len(bodies))
	}
	if got := counters.Failures[stats.Other].Load(); got != 0 {
		t.Errorf("%d counted against the upstream", got)
	}
}

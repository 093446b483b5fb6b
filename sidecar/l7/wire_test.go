package l7

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
)

// sameAsReadResponse checks that readHead, where it takes raw, gives what
// http.ReadResponse gives, and consumes the same bytes.
func sameAsReadResponse(t *testing.T, raw []byte, method string) (fast bool) {
	t.Helper()
	req := &http.Request{Method: method}
	want, werr := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
	br := bufio.NewReaderSize(bytes.NewReader(raw), 16<<10)
	br.Peek(1)
	got := readHead(&upConn{r: br}, req)
	if got == nil {
		return false
	}
	if werr != nil {
		t.Fatalf("%q: readHead took what ReadResponse refuses (%v)", raw, werr)
	}
	if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
		got.ContentLength != want.ContentLength || got.Close != want.Close || !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
	}
	gb, gerr := io.ReadAll(got.Body)
	wb, werr := io.ReadAll(want.Body)
	if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: body %q %v, want %q %v", raw, gb, gerr, wb, werr)
	}
	return true
}

func TestReadHead(t *testing.T) {
	for _, tc := range []struct {
		raw    string
		method string
		fast   bool
	}{
		{"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\nNEXT", "GET", true},
		{"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nx-a:  1 \r\nX-A: 2\r\nConnection: close\r\n\r\nno", "GET", true},
		{"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", "POST", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "GET", true}, // short: the body says so
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"HTTP/1.1 204 No Content\r\n\r\n", "GET", false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"HTTP/1.1 200 OK\r\n\r\nuntil close", "GET", false},
		{"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\nx", "GET", false}, // obs-fold
		{"HTTP/1.1 200 OK\r\nBad Key: a\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"HTTP/1.1 200 OK\nContent-Length: 1\n\nx", "GET", false},
		{"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Len", "GET", false}, // not all here yet
	} {
		if fast := sameAsReadResponse(t, []byte(tc.raw), tc.method); fast != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.raw, fast, tc.fast)
		}
	}
}

func FuzzReadHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"))
	f.Add([]byte("HTTP/1.1 500 x\r\nconnection: keep-alive, close\r\nContent-Length: 1\r\n\r\nx"))
	f.Fuzz(func(t *testing.T, raw []byte) { sameAsReadResponse(t, raw, "GET") })
}

// TestWriteRequestLikeStdlib: what writeRequest sends parses as what
// Request.Write sends would (header order aside).
func TestWriteRequestLikeStdlib(t *testing.T) {
	for _, raw := range []string{
		"GET /a/b?c=d HTTP/1.1\r\nHost: svc:80\r\nX-A: 1\r\nX-A: 2\r\nUser-Agent: curl\r\n\r\n",
		"POST /u HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello",
		"DELETE /x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"PUT /x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"GET /%7Eu/a%2Fb HTTP/1.0\r\nHost: [::1]:8080\r\n\r\n",
	} {
		parse := func() *http.Request {
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			r.Close = false
			return r
		}
		fr := parse()
		if !fastRequest(fr) {
			t.Fatalf("%q: not on the fast path", raw)
		}
		var fast, std bytes.Buffer
		fw := bufio.NewWriter(&fast)
		if err := writeRequest(fw, fr); err != nil {
			t.Fatal(err)
		}
		fw.Flush()
		if err := parse().Write(&std); err != nil {
			t.Fatal(err)
		}
		got, _ := http.ReadRequest(bufio.NewReader(&fast))
		want, _ := http.ReadRequest(bufio.NewReader(&std))
		gb, _ := io.ReadAll(got.Body)
		wb, _ := io.ReadAll(want.Body)
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			!reflect.DeepEqual(got.Header, want.Header) || !bytes.Equal(gb, wb) || got.ContentLength != want.ContentLength {
			t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
		}
	}
}

func TestWriteResponseLikeStdlib(t *testing.T) {
	for _, raw := range []string{
		"HTTP/1.1 200 OK\r\nServer: x\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 503\r\nContent-Length: 2\r\n\r\nno",
		"HTTP/1.0 201 Created\r\nContent-Length: 2\r\n\r\nok",
	} {
		for _, closing := range []bool{false, true} {
			parse := func() *http.Response {
				r, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: "GET"})
				if err != nil {
					t.Fatal(err)
				}
				r.Close = closing
				return r
			}
			fr := parse()
			if !fastResponse(fr) {
				t.Fatalf("%q: not on the fast path", raw)
			}
			var fast, std bytes.Buffer
			fw := bufio.NewWriter(&fast)
			n, err := writeResponse(fw, fr)
			fw.Flush()
			if err != nil || n != int64(fast.Len()) {
				t.Fatalf("%q: wrote %d of %d: %v", raw, n, fast.Len(), err)
			}
			if err := parse().Write(&std); err != nil {
				t.Fatal(err)
			}
			if fast.Len() != std.Len() {
				t.Fatalf("%q: %q, net/http: %q", raw, fast.String(), std.String())
			}
			got, _ := http.ReadResponse(bufio.NewReader(&fast), nil)
			want, _ := http.ReadResponse(bufio.NewReader(&std), nil)
			gb, _ := io.ReadAll(got.Body)
			wb, _ := io.ReadAll(want.Body)
			if got.Status != want.Status || got.Proto != want.Proto || got.Close != want.Close ||
				!reflect.DeepEqual(got.Header, want.Header) || !bytes.Equal(gb, wb) {
				t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
			}
		}
	}
}

// TestH1PipelinedAndLarge: pipelined requests are answered in order on one
// connection, and a body far larger than the buffers streams both ways.
func TestH1PipelinedAndLarge(t *testing.T) {
	const big = 4 << 20
	app := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", "4194304")
			w.Write(bytes.Repeat([]byte("b"), big))
		case "/echo":
			n, _ := io.Copy(io.Discard, r.Body)
			w.Write([]byte(r.URL.Query().Get("i") + ":" + string(rune('0'+n%10))))
		default:
			w.Write([]byte(r.URL.Query().Get("i")))
		}
	}))
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: &stats.Counters{}, BodyLimit: 1 << 10}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute)
	addr := serveH1(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var pipe strings.Builder
	for _, i := range []string{"1", "2", "3"} {
		pipe.WriteString("GET /?i=" + i + " HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	pipe.WriteString("POST /echo?i=4 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	go c.Write([]byte(pipe.String()))
	br := bufio.NewReader(c)
	for _, want := range []string{"1", "2", "3", "4:3"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Fatalf("pipelined: %q, want %q", b, want)
		}
	}
	go func() { // a big upload (not kept for retries: over BodyLimit)
		c.Write([]byte("POST /echo?i=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n"))
		c.Write(bytes.Repeat([]byte("u"), big))
		c.Write([]byte("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"))
	}()
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); string(b) != "5:4" {
		t.Fatalf("upload: %q", b)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, resp.Body); n != big || err != nil {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
}

// BenchmarkReadHead: the fast answer parser against http.ReadResponse on
// an nginx-like answer.
func BenchmarkReadHead(b *testing.B) {
	raw := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 05:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n")
	req := &http.Request{Method: "GET"}
	rd := bytes.NewReader(raw)
	br := bufio.NewReaderSize(rd, 16<<10)
	for _, tc := range []struct {
		name string
		read func() *http.Response
	}{
		{"fast", func() *http.Response { return readHead(&upConn{r: br}, req) }},
		{"net-http", func() *http.Response { r, _ := http.ReadResponse(br, req); return r }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(raw)
				br.Reset(rd)
				br.Peek(1)
				resp := tc.read()
				io.Copy(io.Discard, resp.Body)
			}
		})
	}
}

// sameAsReadRequest checks that readRequestHead, where it takes raw,
// gives what http.ReadRequest gives and leaves the same bytes unread.
func sameAsReadRequest(t *testing.T, raw []byte) (fast bool) {
	t.Helper()
	wbr := bufio.NewReaderSize(bytes.NewReader(raw), 16<<10)
	want, werr := http.ReadRequest(wbr)
	br := bufio.NewReaderSize(bytes.NewReader(raw), 16<<10)
	got, err := readRequestHead(br, &reqScratch{h: http.Header{"Stale": {"x"}}, vals: []string{"old"}})
	if got == nil {
		if err != nil && (werr == nil || err.Error() != werr.Error()) {
			t.Fatalf("%q: error %v, ReadRequest's %v", raw, err, werr)
		}
		return false
	}
	if werr != nil {
		t.Fatalf("%q: readRequestHead took what ReadRequest refuses (%v)", raw, werr)
	}
	if got.Method != want.Method || !reflect.DeepEqual(got.URL, want.URL) || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor || got.Host != want.Host ||
		got.RequestURI != want.RequestURI || got.ContentLength != want.ContentLength || got.Close != want.Close ||
		got.Body != want.Body || !reflect.DeepEqual(got.Header, want.Header) || len(want.TransferEncoding) > 0 {
		t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
	}
	if br.Buffered() != wbr.Buffered() {
		t.Fatalf("%q: %d bytes left, ReadRequest leaves %d", raw, br.Buffered(), wbr.Buffered())
	}
	return true
}

func TestReadRequestHead(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		fast bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /a/%7Eb?c=d&e HTTP/1.1\r\nhost: x:80\r\nuser-agent:  wrk \r\nX-A: 1\r\nx-a: 2\r\nConnection: keep-alive, close\r\n\r\nGET / HTTP/1.1\r\n", true},
		{"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET / HTTP/1.1\r\n\r\n", false},                                     // no Host
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},               // ReadRequest refuses
		{"GET / HTTP/1.0\r\nHost: x\r\n\r\n", false},                          // keep-alive rules
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", false}, // a body
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"GET http://evil:22/ HTTP/1.1\r\nHost: evil:22\r\n\r\n", false},
		{"CONNECT x:1 HTTP/1.1\r\nHost: x:1\r\n\r\n", false},
		{"GET * HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", false}, // obs-fold
		{"GET / HTTP/1.1\r\nHost: x\r\nBad Key: a\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: \x7f\r\n\r\n", false},
		{"GET / HTTP/1.1\nHost: x\n\n", false},
		{"get / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: x\r\n", false}, // not all here yet
		{"", false},
	} {
		if fast := sameAsReadRequest(t, []byte(tc.raw)); fast != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.raw, fast, tc.fast)
		}
	}
}

func FuzzReadRequestHead(f *testing.F) {
	f.Add([]byte("GET /a?b HTTP/1.1\r\nHost: x\r\nUser-Agent: wrk\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"))
	f.Fuzz(func(t *testing.T, raw []byte) { sameAsReadRequest(t, raw) })
}

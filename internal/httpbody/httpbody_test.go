package httpbody_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/detourmesh/detour/internal/httpbody"
	"github.com/detourmesh/detour/internal/httpbody/httpbodytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const limit = 4096

// echo answers how many body bytes it read and the Content-Length it saw.
func echo(called *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called.Add(1)
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d %d", n, r.ContentLength)
	})
}

func TestLimit(t *testing.T) {
	var called atomic.Int64
	ts := httptest.NewServer(httpbody.Limit(limit, echo(&called)))
	defer ts.Close()
	for _, tc := range []struct {
		name    string
		n       int
		chunked bool
		code    int
		want    string // the answer, or in the error
	}{
		{"at limit", limit, false, 200, "4096 4096"},
		{"at limit chunked", limit, true, 200, "4096 4096"},
		{"small chunked", 100, true, 200, "100 100"},
		{"over", limit + 1, false, 413, "request body too large: more than 4096 bytes"},
		{"over chunked", limit + 1, true, 413, "request body too large: more than 4096 bytes"},
		{"12 MB", httpbodytest.Big, false, 413, "too large"},
		{"12 MB chunked", httpbodytest.Big, true, 413, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := called.Load()
			code, msg := httpbodytest.Send(t, http.MethodPost, ts.URL, httpbodytest.Body(tc.n), tc.chunked)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("%d %q; want %d with %q", code, msg, tc.code, tc.want)
			}
			if reached := called.Load() != before; reached != (code == 200) {
				t.Fatalf("handler reached: %v with %d", reached, code)
			}
		})
	}
	code, msg := httpbodytest.Send(t, http.MethodGet, ts.URL, nil, false)
	if code != 200 || msg != "0 0" {
		t.Fatalf("GET without a body: %d %q", code, msg)
	}
}

// dialRaw sends head on a fresh connection to ts and returns the
// connection, which the caller closes, and the answer's head.
func dialRaw(t *testing.T, ts *httptest.Server, head string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

// A client that waits for "100 Continue" is answered 413 at once and never
// told to send.
func TestNoContinueBeforeRefusal(t *testing.T) {
	var called atomic.Int64
	ts := httptest.NewServer(httpbody.Limit(limit, echo(&called)))
	defer ts.Close()
	c, _, resp := dialRaw(t, ts, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12000000\r\nExpect: 100-continue\r\n\r\n")
	defer c.Close()
	if resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("first answer %s (close %v), want 413 and Connection: close", resp.Status, resp.Close)
	}
	if called.Load() != 0 {
		t.Fatal("the handler was reached")
	}
}

// A client that sends its body without waiting gets its 413 and may go on
// sending the whole body: the server reads it rather than reset the
// connection under it, then closes.
func TestReadsOnAfterRefusal(t *testing.T) {
	var called atomic.Int64
	ts := httptest.NewServer(httpbody.Limit(limit, echo(&called)))
	defer ts.Close()
	const n = 2 << 20 // over net/http's own 256 KiB post-handler discard
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			c, br, resp := dialRaw(t, ts, "POST / "+proto+"\r\nHost: x\r\nContent-Length: "+strconv.Itoa(n)+"\r\n\r\n")
			defer c.Close()
			if resp.StatusCode != 413 {
				t.Fatalf("answer %s, want 413", resp.Status)
			}
			if _, err := io.Copy(c, bytes.NewReader(httpbodytest.Body(n))); err != nil {
				t.Fatalf("sending the body after the 413: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after the answer: %q, %v; want the connection closed", rest, err)
			}
		})
	}
	if called.Load() != 0 {
		t.Fatal("the handler was reached")
	}
}

// A chunked body that breaks off is a 400, not a 413.
func TestBrokenChunkedBody(t *testing.T) {
	var called atomic.Int64
	ts := httptest.NewServer(httpbody.Limit(limit, echo(&called)))
	defer ts.Close()
	c, _, resp := dialRaw(t, ts, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n")
	defer c.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("answer %s, want 400", resp.Status)
	}
}

package l7

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
)

// FuzzH1 sends arbitrary bytes to the HTTP/1.1 fast path: whatever comes
// in, the sidecar answers or closes; it never hangs or panics.
func FuzzH1(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET http://evil:22/ HTTP/1.1\r\nHost: evil:22\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	for _, tc := range strictCases {
		f.Add([]byte(tc.raw))
	}
	app := front(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	}))
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: &stats.Counters{}, BodyLimit: 1 << 10}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, 2*time.Second)
	addr := serveH1(f, s)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("the sidecar neither answered nor closed: %v", err)
		}
	})
}

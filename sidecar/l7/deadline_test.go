package l7

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// A deadline armed early and then moved later must not end the read:
// it fires, is armed again at the wanted time, and the read goes on.
func TestLazyDeadlineFiresEarlyAndGoesOn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	lc := &lazyConn{Conn: a}
	lc.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) // armed
	lc.SetReadDeadline(time.Now().Add(time.Minute))           // wanted; not armed yet
	go func() {
		<-time.After(200 * time.Millisecond) // well past the armed one
		b.Write([]byte("x"))
	}()
	buf := make([]byte, 1)
	if n, err := lc.Read(buf); n != 1 || err != nil {
		t.Fatalf("read %d, %v: the early deadline ended it", n, err)
	}
}

// The wanted deadline still fires, and a stop (a drain) ends a read at
// the deadline it cut.
func TestLazyDeadlineFires(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	lc := &lazyConn{Conn: a}
	lc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	lc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := lc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want the deadline", err)
	}
	lc.SetReadDeadline(time.Time{})
	stopped := true
	lc.stop = func() bool { return stopped }
	a.SetReadDeadline(time.Now()) // what Drain does, behind lc's back
	if _, err := lc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after a drain's cut: %v", err)
	}
}

// Strings of a request stay as they were after the connection's next
// request is read into the same scratch (a span may keep them).
func TestScratchKeepsEarlierStrings(t *testing.T) {
	raw := "GET /first?a=1 HTTP/1.1\r\nHost: one\r\nX-A: alpha\r\n\r\n" +
		"GET /second HTTP/1.1\r\nHost: two\r\nX-A: beta\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(raw))
	var s reqScratch
	r1, err := (&H1{}).readRequest(&br, nil, &s)
	if err != nil || r1 == nil {
		t.Fatal(r1, err)
	}
	path, host, xa := r1.URL.Path, r1.Host, r1.Header["X-A"][0]
	r2, err := (&H1{}).readRequest(&br, nil, &s)
	if err != nil || r2.URL.Path != "/second" || r2.Host != "two" || r2.Header["X-A"][0] != "beta" {
		t.Fatalf("second: %+v, %v", r2, err)
	}
	if path != "/first" || host != "one" || xa != "alpha" {
		t.Fatalf("first request's strings changed: %q %q %q", path, host, xa)
	}
}

package stats

import (
	"io"
	"net"
	"testing"
)

// io.Copy must reach the wrapped TCP connection's splice(2) paths.
var (
	_ io.ReaderFrom = (*Conn)(nil)
	_ io.WriterTo   = (*Conn)(nil)
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestConnCounts: every way bytes move through a Conn is counted once,
// and only the first Close lowers ConnsActive.
func TestConnCounts(t *testing.T) {
	var c Counters
	client, accepted := tcpPair(t)
	up, upPeer := tcpPair(t)
	x := Accepted(accepted, &c)
	if c.ConnsTotal.Load() != 1 || c.ConnsActive.Load() != 1 {
		t.Fatalf("after Accepted: %+v", c.View())
	}

	client.Write([]byte("hello")) // Read: 5 in
	buf := make([]byte, 5)
	if _, err := io.ReadFull(x, buf); err != nil {
		t.Fatal(err)
	}
	x.Write([]byte("hi!")) // Write: 3 out
	io.ReadFull(client, buf[:3])

	// io.Copy out of x (WriteTo, as the L4 pipe does towards the upstream).
	client.Write(make([]byte, 1000))
	client.(*net.TCPConn).CloseWrite()
	if n, err := io.Copy(up, x); n != 1000 || err != nil {
		t.Fatalf("copy out: %d %v", n, err)
	}
	up.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, upPeer)
	// io.Copy into x (ReadFrom, the way back).
	upPeer.Write(make([]byte, 2000))
	upPeer.(*net.TCPConn).CloseWrite()
	if n, err := io.Copy(x, up); n != 2000 || err != nil {
		t.Fatalf("copy in: %d %v", n, err)
	}
	if err := x.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, _ := io.Copy(io.Discard, client); n != 2000 {
		t.Fatalf("client got %d bytes", n)
	}

	x.Close()
	x.Close()
	v := c.View()
	if v.BytesIn != 1005 || v.BytesOut != 2003 || v.ConnsTotal != 1 || v.ConnsActive != 0 {
		t.Fatalf("counters: %+v, want in 1005, out 2003, total 1, active 0", v)
	}
}

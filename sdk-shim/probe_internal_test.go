package shim

import (
	"net"
	"testing"
	"time"
)

// A probe accepted by a listener that then resets or closes the
// connection (a sidecar being torn down by SIGKILL) means gone; one that
// stays open and silent, or speaks first, means alive.
func TestResetAtOnce(t *testing.T) {
	tests := []struct {
		name string
		peer func(net.Conn)
		want bool
	}{
		{"reset", func(c net.Conn) { c.(*net.TCPConn).SetLinger(0); c.Close() }, true},
		{"closed", func(c net.Conn) { c.Close() }, true},
		{"silent", func(c net.Conn) {}, false},
		{"speaks first", func(c net.Conn) { c.Write([]byte{0}) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			dialed := make(chan struct{})
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				<-dialed // act on an established connection, as a dying sidecar does
				tc.peer(c)
				accepted <- c
			}()
			conn, err := net.Dial("tcp", ln.Addr().String())
			close(dialed)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			peer := <-accepted
			// A window far longer than the peer needs: the outcome must not
			// depend on scheduling.
			if got := resetAtOnce(conn, 2*time.Second); got != tc.want {
				t.Errorf("resetAtOnce = %v, want %v", got, tc.want)
			}
			if peer != nil {
				peer.Close()
			}
		})
	}
}

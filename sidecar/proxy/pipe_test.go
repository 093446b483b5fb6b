package proxy

import (
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/detourmesh/detour/sidecar/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a proxied client connection: client ↔ Pipe ↔ server side
// handed to serve. It returns the client conn and a channel with Pipe's
// result.
func pair(t testing.TB, cfg PipeConfig, serve func(net.Conn), counters ...*stats.Counters) (net.Conn, <-chan PipeResult) {
	t.Helper()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan PipeResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer front.Close()
		c, err := front.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", back.Addr().String())
		if err != nil {
			c.Close()
			return
		}
		res <- Pipe(c, up, cfg, NewBufferPool(32<<10), counters...)
	}()
	go func() {
		defer back.Close()
		c, err := back.Accept()
		if err != nil {
			return
		}
		serve(c)
	}()
	client, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); <-done })
	return client, res
}

func TestHalfClose(t *testing.T) {
	for _, cfg := range []PipeConfig{{}, {Idle: time.Minute, FirstByte: time.Minute}} {
		client, _ := pair(t, cfg, func(c net.Conn) {
			defer c.Close()
			req, _ := io.ReadAll(c) // until the client's half-close
			c.Write([]byte("got " + string(req)))
		})
		client.Write([]byte("request"))
		client.(*net.TCPConn).CloseWrite()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(client)
		if err != nil || string(got) != "got request" {
			t.Fatalf("%+v: %q %v", cfg, got, err)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	client, res := pair(t, PipeConfig{Idle: 40 * time.Millisecond}, func(c net.Conn) {
		defer c.Close()
		<-stop
	})
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection not closed")
	}
	if r := <-res; !r.IdleTimeout {
		t.Fatalf("result %+v", r)
	}
}

func TestFirstByteTimeout(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	client, res := pair(t, PipeConfig{FirstByte: 50 * time.Millisecond}, func(c net.Conn) {
		defer c.Close()
		<-stop // a hung app: accepts, reads nothing, answers nothing
	})
	client.Write([]byte("ping"))
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("hung upstream not cut")
	}
	r := <-res
	if !r.FirstByteTimeout || r.GotFirstByte {
		t.Fatalf("result %+v", r)
	}
}

func TestServerSpeaksFirst(t *testing.T) {
	client, res := pair(t, PipeConfig{FirstByte: 50 * time.Millisecond}, func(c net.Conn) {
		defer c.Close()
		c.Write([]byte("220 hello\n"))
		buf := make([]byte, 10)
		n, _ := c.Read(buf)
		c.Write(buf[:n])
	})
	client.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := client.Read(buf)
	if string(buf[:n]) != "220 hello\n" {
		t.Fatalf("greeting %q", buf[:n])
	}
	client.Write([]byte("QUIT"))
	n, _ = io.ReadFull(client, buf[:4])
	if string(buf[:n]) != "QUIT" {
		t.Fatalf("echo %q", buf[:n])
	}
	client.Close()
	if r := <-res; r.FirstByteTimeout || !r.GotFirstByte {
		t.Fatalf("result %+v", r)
	}
}

// TestCountedWhileOpen: bytes are counted while a long-lived connection
// stays open (an RPC client's), not only when it ends, with or without
// an idle timeout.
func TestCountedWhileOpen(t *testing.T) {
	for _, idle := range []time.Duration{0, time.Hour} {
		var c stats.Counters
		client, _ := pair(t, PipeConfig{Idle: idle}, func(s net.Conn) { io.Copy(s, s); s.Close() }, &c)
		msg := []byte("hello, a small request")
		buf := make([]byte, len(msg))
		for range 3 {
			client.Write(msg)
			if _, err := io.ReadFull(client, buf); err != nil {
				t.Fatal(err)
			}
		}
		want := uint64(3 * len(msg))
		deadline := time.Now().Add(10 * time.Second)
		for c.BytesIn.Load() < want || c.BytesOut.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("idle %v: counted in=%d out=%d while open, want %d each", idle, c.BytesIn.Load(), c.BytesOut.Load(), want)
			}
			<-time.After(10 * time.Millisecond)
		}
	}
}

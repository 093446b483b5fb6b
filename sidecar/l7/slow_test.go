package l7

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
)

// TestHeadTimeoutSlowloris: 200 connections that never finish a head
// (half send nothing, half trickle a header line at a time) are all
// closed once the head timeout has passed, each counted head_timeout,
// and none reaches the app; a kept-alive connection that finished its
// request is not cut by it.
func TestHeadTimeoutSlowloris(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Listener: l}
	app := serveHTTP(t, rec, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	counters := &stats.Counters{}
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: counters, HeadTimeout: 300 * time.Millisecond}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute)
	addr := serveH1(t, s)

	kept, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	kr := bufio.NewReader(kept)
	get := func() {
		t.Helper()
		kept.SetDeadline(time.Now().Add(10 * time.Second))
		kept.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(kr, nil)
		if err != nil {
			t.Fatalf("kept-alive connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	get()
	rec.take()

	const n = 200
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		if i%2 == 1 {
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a header line every 20 ms on each odd connection
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for i := 1; i < n; i += 2 {
					conns[i].Write([]byte("X-Slow: a\r\n"))
				}
			}
		}
	}()
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		// A trickling client still writing when closed gets a reset.
		b, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) || len(b) != 0 {
			t.Fatalf("connection %d: %q, %v (want it closed, no answer)", i, b, err)
		}
	}
	close(stop)
	wg.Wait()
	if got := counters.Failures[stats.HeadTimeout].Load(); got != n {
		t.Errorf("head_timeout %d, want %d", got, n)
	}
	if got := rec.take(); got != "" {
		t.Errorf("the app read %.200q", got)
	}
	get() // well past the head timeout: idle, not cut
}

// TestHeadTimeoutKeptAlive: on a kept-alive connection the head timeout
// runs from the next head's first byte; the wait before it is the idle
// timeout's.
func TestHeadTimeoutKeptAlive(t *testing.T) {
	app := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	counters := &stats.Counters{}
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: counters, HeadTimeout: 200 * time.Millisecond}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute)
	addr := serveH1(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHo"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("a half-sent second head: %v, want the connection closed", err)
	}
	if got := counters.Failures[stats.HeadTimeout].Load(); got != 1 {
		t.Errorf("head_timeout %d, want 1", got)
	}
}

// TestSlowBody: a request body that stops coming for the idle timeout
// ends the request (408, bad_frame) and the connection; a body that keeps
// coming, however long it takes in all, is not cut.
func TestSlowBody(t *testing.T) {
	app := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Write([]byte{byte('0' + n)})
	}))
	counters := &stats.Counters{}
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: counters}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Second)
	addr := serveH1(t, s)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a stalled body: %v %v, want 408", resp, err)
	}
	if got := counters.Failures[stats.BadFrame].Load(); got != 1 {
		t.Errorf("bad_frame %d, want 1", got)
	}

	// 9 bytes, one every 150 ms: longer than the idle timeout in all.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(20 * time.Second))
	c2.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"))
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for range 9 {
		<-tick.C
		c2.Write([]byte("b"))
	}
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a slow but steady body: %v %v", resp, err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "9" {
		t.Fatalf("the app read %q bytes", b)
	}
}

// TestSlowReader: a client that stops reading its answer is dropped once
// a write has been stuck for the idle timeout, rather than holding its
// connection (and the upstream's) for ever.
func TestSlowReader(t *testing.T) {
	const size = 64 << 20 // more than both sockets' buffers hold
	app := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(make([]byte, size))
	}))
	counters := &stats.Counters{}
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: counters}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, 300*time.Millisecond)
	addr := serveH1(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	// The client reads nothing; the sidecar must let it go.
	deadline := time.After(20 * time.Second)
	for counters.ConnsTotal.Load() != 1 || counters.ConnsActive.Load() != 0 {
		select {
		case <-deadline:
			t.Fatalf("a client not reading still connected (%d open)", counters.ConnsActive.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

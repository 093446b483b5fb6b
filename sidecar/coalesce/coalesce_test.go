package coalesce

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return New(c), s
}

// countConn counts the writes that reach the underlying connection.
type countConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func TestEveryByteInOrderFromConcurrentWriters(t *testing.T) {
	w, r := pair(t)
	defer r.Close()
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each message is written whole, in one Write, as HTTP/2
			// frames are: messages of one writer arrive in order.
			for j := range each {
				msg := []byte{byte(i), byte(j >> 8), byte(j), '\n'}
				if _, err := w.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); got <- b }()
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := <-got
	if len(b) != writers*each*4 {
		t.Fatalf("read %d bytes, want %d", len(b), writers*each*4)
	}
	next := make([]int, writers)
	for i := 0; i < len(b); i += 4 {
		who, seq := int(b[i]), int(b[i+1])<<8|int(b[i+2])
		if seq != next[who] || b[i+3] != '\n' {
			t.Fatalf("writer %d: message %d arrived when %d was due", who, seq, next[who])
		}
		next[who]++
	}
}

func TestWritesWhileBusyShareOneSyscall(t *testing.T) {
	a, r := pair(t)
	defer r.Close()
	cc := &countConn{Conn: a.Conn}
	w := New(cc)
	// Hold the lock so the flusher cannot run, as when the writer's
	// goroutine keeps the CPU: everything written meanwhile is one batch.
	w.mu.Lock()
	w.buf = append(w.buf, "one "...)
	w.flushing = true
	go w.flush()
	w.buf = append(w.buf, "two "...)
	w.mu.Unlock()
	w.Write([]byte("three"))
	w.Close()
	b, _ := io.ReadAll(r)
	if string(b) != "one two three" {
		t.Fatalf("read %q", b)
	}
	if cc.writes > 2 {
		t.Fatalf("%d writes for three queued messages", cc.writes)
	}
}

func TestWriteErrorIsReturnedLater(t *testing.T) {
	w, r := pair(t)
	r.Close()
	w.Conn.(*net.TCPConn).CloseWrite()
	// Write only queues: the flusher's failed write surfaces in a later
	// Write (which blocks once maxPending is queued, so this loop waits
	// on the flusher rather than spinning).
	var err error
	chunk := make([]byte, 1024)
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); {
		_, err = w.Write(chunk)
	}
	if err == nil {
		t.Fatal("writes to a closed peer never failed")
	}
	if _, again := w.Write([]byte("x")); !errors.Is(again, err) && again.Error() != err.Error() {
		t.Fatalf("second error %v, first %v", again, err)
	}
	w.Close()
}

func TestBoundedBufferPushesBack(t *testing.T) {
	// net.Pipe has no kernel buffer: the flusher's first write blocks
	// until the peer reads, and the peer reads nothing. Then ours fills,
	// and Write must block rather than grow without bound.
	c, peer := net.Pipe()
	defer peer.Close()
	w := New(c)
	var writes atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			writes.Add(1)
		}
	}()
	pending := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.buf)
	}
	// Full: either the buffer holds maxPending, or the flusher took a
	// whole buffer into its stuck write and the writer waits for it.
	full := func() bool {
		n := pending()
		return n >= maxPending || n == 0 && writes.Load() >= maxPending/(64<<10)
	}
	for deadline := time.Now().Add(5 * time.Second); !full(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("buffer never filled: %d bytes pending after %d writes", pending(), writes.Load())
		}
	}
	// What the flusher holds (at most one full buffer) plus what waits.
	if n := writes.Load(); n > 2*maxPending/(64<<10) {
		t.Fatalf("%d writes of 64 KiB accepted, bound %d bytes pending", n, maxPending)
	}
	select {
	case <-done:
		t.Fatal("writer finished although the peer reads nothing")
	default:
	}
	// Close must not hang on the stuck flusher, and must release the
	// blocked writer.
	start := time.Now()
	w.Close()
	<-done
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Close took %v", time.Since(start))
	}
}

func TestCloseFlushesPending(t *testing.T) {
	w, r := pair(t)
	defer r.Close()
	msg := bytes.Repeat([]byte("goaway"), 1000)
	w.Write(msg)
	w.Close()
	b, _ := io.ReadAll(r)
	if !bytes.Equal(b, msg) {
		t.Fatalf("read %d bytes, want %d", len(b), len(msg))
	}
}

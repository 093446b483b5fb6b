package dubbo

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// writeTimeout bounds one write(2) to a peer: one that stops reading
// fails its connection instead of holding up every frame queued
// behind it (an upstream reader writes the answers of all its clients).
const writeTimeout = 30 * time.Second

// writer writes whole frames from many goroutines (responses from every
// upstream connection, time-outs, heartbeats) onto one connection. A
// frame is written under mu into a buffer, and the buffer is flushed by
// the last writer in line: while others wait for mu, their frames leave
// in the same write(2).
//
// The first write error is kept (every later write returns it) and
// handed to fail, in a goroutine of its own, which closes the
// connection.
type writer struct {
	waiting atomic.Int32 // writers in line for mu, the holder included
	failed  atomic.Bool
	fail    func(error)

	mu  sync.Mutex // guards bw, err and the deadlineWriter
	bw  *bufio.Writer
	err error
}

func newWriter(c net.Conn, size int, fail func(error)) *writer {
	return &writer{bw: bufio.NewWriterSize(&deadlineWriter{c: c}, size), fail: fail}
}

// deadlineWriter sets a write deadline writeTimeout ahead, moved only
// when half of it is used: a write costs a clock read, not a timer
// update.
type deadlineWriter struct {
	c     net.Conn
	until time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Add(writeTimeout / 2).After(d.until) {
		d.until = now.Add(writeTimeout)
		d.c.SetWriteDeadline(d.until)
	}
	return d.c.Write(p)
}

// setErr records err as the writer's error; the first one goes to fail.
func (w *writer) setErr(err error) error {
	w.err = err
	if err != nil && !w.failed.Swap(true) && w.fail != nil {
		go w.fail(err)
	}
	return err
}

// write writes the frame hdr+body (hdr may hold the whole frame and
// body be nil) and reports the connection's first write error.
func (w *writer) write(hdr, body []byte) error { return w.put(hdr, body, true) }

// buffer is write without the flush: the caller flushes later (batch).
func (w *writer) buffer(hdr, body []byte) error { return w.put(hdr, body, false) }

func (w *writer) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && w.bw.Buffered() > 0 {
		w.setErr(w.bw.Flush())
	}
}

func (w *writer) put(hdr, body []byte, flush bool) error {
	w.waiting.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	last := w.waiting.Add(-1) == 0 && flush
	if w.err != nil {
		return w.err
	}
	if _, err := w.bw.Write(hdr); err != nil {
		return w.setErr(err)
	}
	if len(body) > 0 {
		if _, err := w.bw.Write(body); err != nil {
			return w.setErr(err)
		}
	}
	if last {
		return w.setErr(w.bw.Flush())
	}
	return nil
}

// batch is one reader's writers with frames buffered and not flushed:
// a reader that has more whole frames to read defers its flushes until
// it has none, so that the frames of one read leave in one write each
// way. Each writer then holds bytes until a flush: every buffer must be
// followed by the batch's flush before its reader blocks.
type batch struct{ ws []*writer }

func (b *batch) add(w *writer) {
	for _, x := range b.ws {
		if x == w {
			return
		}
	}
	b.ws = append(b.ws, w)
}

func (b *batch) flush() {
	for _, w := range b.ws {
		w.flush()
	}
	clear(b.ws)
	b.ws = b.ws[:0]
}

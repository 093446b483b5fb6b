package dubbo

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
)

// writer writes whole frames from many goroutines (responses from every
// upstream connection, time-outs, heartbeats) onto one connection. A
// frame is written under mu into a buffer, and the buffer is flushed by
// the last writer in line: while others wait for mu, their frames leave
// in the same write(2).
type writer struct {
	waiting atomic.Int32 // writers in line for mu, the holder included

	mu  sync.Mutex // guards bw and err
	bw  *bufio.Writer
	err error
}

func newWriter(w io.Writer, size int) *writer { return &writer{bw: bufio.NewWriterSize(w, size)} }

// write writes the frame hdr+body (hdr may hold the whole frame and
// body be nil) and reports the connection's first write error.
func (w *writer) write(hdr, body []byte) error { return w.put(hdr, body, true) }

// buffer is write without the flush: the caller flushes later (batch).
func (w *writer) buffer(hdr, body []byte) error { return w.put(hdr, body, false) }

func (w *writer) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && w.bw.Buffered() > 0 {
		w.err = w.bw.Flush()
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
		w.err = err
		return err
	}
	if len(body) > 0 {
		if _, err := w.bw.Write(body); err != nil {
			w.err = err
			return err
		}
	}
	if last {
		w.err = w.bw.Flush()
	}
	return w.err
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

package h2

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Limits of a connection's write buffer. Past outRoom pending bytes no
// DATA is written (streams wait as for a closed window) until the kernel
// takes them: a client that stops reading holds back only its own
// streams, never the upstream connection's reader that feeds it. Past
// outMax (frames other than DATA piling up) the connection is closed.
const (
	outRoom = 256 << 10
	outMax  = 4 << 20
)

var errOverflow = errors.New("h2: write buffer overflow: peer not reading")

// writer batches a connection's frames: Write appends and never blocks;
// one flusher goroutine, started on demand, writes what piled up while
// it was busy, in one syscall.
type writer struct {
	nc       net.Conn
	mu       sync.Mutex
	buf      []byte
	spare    []byte
	flushing bool
	starved  bool // DATA was held back for want of room
	err      error
	idle     sync.Cond // signalled when a flush ends
	drained  func()    // called (no lock held) once room opens for starved DATA
}

func newWriter(nc net.Conn) *writer {
	w := &writer{nc: nc}
	w.idle.L = &w.mu
	return w
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if len(w.buf)+len(p) > outMax {
		w.err = errOverflow
		w.nc.Close()
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	if !w.flushing {
		w.flushing = true
		go w.flush()
	}
	return len(p), nil
}

// room is how many DATA bytes may be queued now; 0 marks w starved.
func (w *writer) room() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := outRoom - len(w.buf)
	if r <= 0 {
		w.starved = true
		return 0
	}
	return r
}

func (w *writer) flush() {
	w.mu.Lock()
	for len(w.buf) > 0 && w.err == nil {
		batch := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		_, err := w.nc.Write(batch)
		w.mu.Lock()
		w.spare = batch[:0]
		if err != nil {
			w.err = err
			w.nc.Close() // the reader sees it and ends the connection
		}
		if w.starved && len(w.buf) < outRoom/2 && w.drained != nil {
			w.starved = false
			w.mu.Unlock()
			w.drained()
			w.mu.Lock()
		}
	}
	w.flushing = false
	w.idle.Broadcast()
	w.mu.Unlock()
}

// close waits a little for pending frames (a GOAWAY) to leave, then
// closes the connection.
func (w *writer) close() {
	t := time.AfterFunc(time.Second, func() {
		w.mu.Lock()
		if w.err == nil {
			w.err = net.ErrClosed
		}
		w.idle.Broadcast()
		w.mu.Unlock()
		w.nc.Close()
	})
	w.mu.Lock()
	for w.flushing && w.err == nil {
		w.idle.Wait()
	}
	if w.err == nil {
		w.err = net.ErrClosed
	}
	w.mu.Unlock()
	t.Stop()
	w.nc.Close()
}

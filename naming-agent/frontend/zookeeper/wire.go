package zookeeper

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Jute, ZooKeeper's encoding, by hand: big-endian int (4 bytes) and long
// (8), a boolean byte, buffers and strings as an int length (-1: null)
// and the bytes, vectors as an int count (-1: null) and the elements.
//
// Why not a library: github.com/go-zookeeper/jute calls itself
// experimental, keeps its generated ZooKeeper records under testdata
// (not importable) and allocates whatever length a peer announces;
// go-zookeeper/zk and dubbogo/go-zookeeper (a dependency already) keep
// their reflection-based codecs unexported and client-side. A server
// reading untrusted bytes wants a small decoder that checks every length
// against what is left and against jute.maxbuffer, and never panics.

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed packet")

// reader decodes jute from one frame. The first error sticks: later reads
// return zero values, so a record's decoder reads every field and checks
// r.err once.
type reader struct {
	b   []byte
	off int
	err error
}

func newReader(b []byte) *reader { return &reader{b: b} }

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", errMalformed, fmt.Sprintf(format, args...), r.off)
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.left() {
		r.fail("%s needs %d bytes, %d left", what, n, r.left())
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) int32() int32 {
	p := r.take(4, "int")
	if p == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(p))
}

func (r *reader) int64() int64 {
	p := r.take(8, "long")
	if p == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(p))
}

func (r *reader) bool() bool {
	p := r.take(1, "boolean")
	return p != nil && p[0] != 0
}

// buffer returns a copy (nil for a null buffer), so what a record keeps
// never pins the frame it came in.
func (r *reader) buffer() []byte {
	n := r.int32()
	if r.err != nil || n == -1 {
		return nil
	}
	if n < -1 || n > maxBuffer {
		r.fail("buffer length %d", n)
		return nil
	}
	p := r.take(int(n), "buffer")
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}

// string reads a ustring; a null one reads as "".
func (r *reader) string() string {
	n := r.int32()
	if r.err != nil || n == -1 {
		return ""
	}
	if n < -1 || n > maxBuffer {
		r.fail("string length %d", n)
		return ""
	}
	return string(r.take(int(n), "string"))
}

// count reads a vector's length; minSize is the smallest encoding of one
// element, so a count the remaining bytes cannot hold fails before any
// allocation.
func (r *reader) count(minSize int) int {
	n := r.int32()
	if r.err != nil || n == -1 {
		return 0
	}
	if n < -1 || int(n) > r.left()/minSize {
		r.fail("vector of %d elements with %d bytes left", n, r.left())
		return 0
	}
	return int(n)
}

func (r *reader) strings() []string {
	n := r.count(4)
	out := make([]string, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.string())
	}
	return out
}

// writer encodes jute into a growing frame whose first 4 bytes are its
// length, filled in by frame.
type writer struct{ b []byte }

func newWriter() *writer { return &writer{b: make([]byte, 4, 64)} }

func (w *writer) int32(v int32) { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }
func (w *writer) int64(v int64) { w.b = binary.BigEndian.AppendUint64(w.b, uint64(v)) }

func (w *writer) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// buffer writes nil as a null buffer (length -1), as ZooKeeper writes a
// node created with null data.
func (w *writer) buffer(p []byte) {
	if p == nil {
		w.int32(-1)
		return
	}
	w.int32(int32(len(p)))
	w.b = append(w.b, p...)
}

func (w *writer) string(s string) {
	w.int32(int32(len(s)))
	w.b = append(w.b, s...)
}

func (w *writer) strings(ss []string) {
	n := 4
	for _, s := range ss {
		n += 4 + len(s)
	}
	// One allocation for the whole list: a providers directory is
	// kilobytes of names, and growing by append was most of a read's CPU.
	w.b = slices.Grow(w.b, n)
	w.int32(int32(len(ss)))
	for _, s := range ss {
		w.string(s)
	}
}

// frame returns the encoded frame with its length prefix.
func (w *writer) frame() []byte {
	binary.BigEndian.PutUint32(w.b[:4], uint32(len(w.b)-4))
	return w.b
}

// errFrameLength: a frame announced a negative length or one over
// jute.maxbuffer; ZooKeeper closes such a connection ("Len error").
var errFrameLength = errors.New("frame length out of range")

// readFrameLength reads a frame's 4-byte length prefix as a signed int,
// as ZooKeeper does.
func readFrameLength(rd io.Reader) (int32, error) {
	var p [4]byte
	if _, err := io.ReadFull(rd, p[:]); err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(p[:])), nil
}

// readFrameBody reads a frame of length n, which must be within
// [0, jute.maxbuffer].
func readFrameBody(rd io.Reader, n int32) ([]byte, error) {
	if n < 0 || n > maxBuffer {
		return nil, fmt.Errorf("%w: %d", errFrameLength, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, err
	}
	return b, nil
}

package dubbo

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrTruncated: the peer closed its side in the middle of a frame.
var ErrTruncated = errors.New("dubbo: truncated frame")

// Reader reads frames off a connection. A frame that fits the buffer is
// returned from it (no copy, no allocation); a larger one is read into
// a fresh slice. Not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	discard int // the last frame, still in br
}

// NewReader reads frames from r with a buffer of size bytes, refusing
// bodies over maxBody.
func NewReader(r io.Reader, size, maxBody int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size), max: maxBody}
}

// Next returns the next frame's header and its bytes, header included;
// they are valid until the next call. At a frame boundary the
// connection's end is io.EOF; within a frame it is ErrTruncated. A bad
// header is an error of Decode (ErrMagic, ErrBodySize, ErrFlags): the
// stream cannot be resynchronised, the caller closes it.
func (r *Reader) Next() (Header, []byte, error) {
	if r.discard > 0 {
		r.br.Discard(r.discard)
		r.discard = 0
	}
	hb, err := r.br.Peek(HeaderLen)
	if err != nil {
		if len(hb) > 0 && errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %d of %d header bytes", ErrTruncated, len(hb), HeaderLen)
		}
		return Header{}, nil, err
	}
	h, err := Decode(hb, r.max)
	if err != nil {
		return Header{}, nil, err
	}
	n := HeaderLen + h.Len
	if n <= r.br.Size() {
		f, err := r.br.Peek(n)
		if err != nil {
			return Header{}, nil, truncated(err, len(f), n)
		}
		r.discard = n
		return h, f, nil
	}
	f := make([]byte, n)
	m, err := io.ReadFull(r.br, f)
	if err != nil {
		return Header{}, nil, truncated(err, m, n)
	}
	return h, f, nil
}

// Ready says a whole frame is buffered: Next will not block.
func (r *Reader) Ready() bool {
	n := r.br.Buffered() - r.discard
	if n < HeaderLen {
		return false
	}
	b, _ := r.br.Peek(r.discard + HeaderLen) // buffered: does not block
	l := int(int32(binary.BigEndian.Uint32(b[r.discard+12:])))
	return l < 0 || n >= HeaderLen+l // a bad length: Next returns its error
}

// Buffered is how many bytes are read and not yet returned.
func (r *Reader) Buffered() int { return r.br.Buffered() - r.discard }

func truncated(err error, got, want int) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %d of %d bytes", ErrTruncated, got, want)
	}
	return err
}

// IsBadFrame says err is bad input (not a closed or timed-out
// connection): the proxy counts it and logs it.
func IsBadFrame(err error) bool {
	return errors.Is(err, ErrMagic) || errors.Is(err, ErrBodySize) || errors.Is(err, ErrFlags) || errors.Is(err, ErrTruncated)
}

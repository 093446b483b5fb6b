package dubbo

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader: any bytes give frames whose headers decode and re-encode
// to what was read, then a clean error; never a panic or a frame longer
// than the limit.
func FuzzReader(f *testing.F) {
	f.Add(request(1, "hello"))
	f.Add(append(Heartbeat(2), ErrorResponse(Header{ID: 3}, StatusServerError, "boom")...))
	f.Add(ReadOnlyEvent(4))
	f.Add([]byte{0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 10
		rd := NewReader(bytes.NewReader(data), 64, max)
		read := 0
		for {
			h, fr, err := rd.Next()
			if err != nil {
				if err != io.EOF && !IsBadFrame(err) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && read != len(data) {
					t.Fatalf("EOF after %d of %d bytes", read, len(data))
				}
				if errors.Is(err, ErrShort) {
					t.Fatal("ErrShort from a reader")
				}
				return
			}
			if h.Len > max || len(fr) != HeaderLen+h.Len || !bytes.Equal(fr, data[read:read+len(fr)]) {
				t.Fatalf("frame %+v of %d bytes at %d", h, len(fr), read)
			}
			var b [HeaderLen]byte
			h.Put(b[:])
			if !bytes.Equal(b[:], fr[:HeaderLen]) {
				t.Fatalf("header %x re-encoded as %x", fr[:HeaderLen], b)
			}
			read += len(fr)
		}
	})
}

// FuzzString: appendString always writes what readString reads back as
// printable ASCII of at most maxString characters.
func FuzzString(f *testing.F) {
	f.Add("timeout")
	f.Add("é\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		got, ok := readString(b)
		if !ok || len(got) > maxString || len(got) != min(len(s), maxString) {
			t.Fatalf("%q -> % x -> %q, %v", s, b, got, ok)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] > 0x7e {
				t.Fatalf("%q -> %q", s, got)
			}
		}
	})
}

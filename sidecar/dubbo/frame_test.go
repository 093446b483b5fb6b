package dubbo

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDecode(t *testing.T) {
	good := Header{Flag: FlagRequest | FlagTwoWay | Hessian2, ID: 1<<63 + 5, Len: 42}
	b := make([]byte, HeaderLen)
	good.Put(b)
	if h, err := Decode(b, DefaultMaxBody); err != nil || h != good || !h.IsRequest() || !h.TwoWay() || h.Event() || h.Serialization() != Hessian2 {
		t.Fatalf("Decode(Put(%+v)) = %+v, %v", good, h, err)
	}
	bad := func(mod func(b []byte)) []byte {
		x := append([]byte(nil), b...)
		mod(x)
		return x
	}
	for _, tc := range []struct {
		name string
		b    []byte
		max  int
		want error
	}{
		{"short", b[:15], DefaultMaxBody, ErrShort},
		{"magic", bad(func(x []byte) { x[0] = 0xda; x[1] = 0xbc }), DefaultMaxBody, ErrMagic},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n"), DefaultMaxBody, ErrMagic},
		{"over max", b, 41, ErrBodySize},
		{"negative", bad(func(x []byte) { x[12] = 0x80 }), DefaultMaxBody, ErrBodySize},
		{"no serialization", bad(func(x []byte) { x[2] = FlagRequest | FlagTwoWay }), DefaultMaxBody, ErrFlags},
		{"two-way response", bad(func(x []byte) { x[2] = FlagTwoWay | Hessian2 }), DefaultMaxBody, ErrFlags},
	} {
		if _, err := Decode(tc.b, tc.max); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Decode(b, 42); err != nil {
		t.Errorf("a body of exactly the maximum: %v", err)
	}
}

func TestHessianString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"", []byte{0x00}},
		{"hello", append([]byte{0x05}, "hello"...)},
		{strings.Repeat("a", 31), append([]byte{0x1f}, strings.Repeat("a", 31)...)},
		{strings.Repeat("a", 32), append([]byte{0x30, 0x20}, strings.Repeat("a", 32)...)},
		{strings.Repeat("b", 1023), append([]byte{0x33, 0xff}, strings.Repeat("b", 1023)...)},
		{strings.Repeat("c", 2000), append([]byte{0x33, 0xff}, strings.Repeat("c", 1023)...)},
		{"é\n", []byte{0x03, '?', '?', '?'}}, // two UTF-8 bytes and a control character
	} {
		got := appendString(nil, tc.in)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("appendString(%.20q) = % x..., want % x...", tc.in, got[:min(len(got), 8)], tc.want[:min(len(tc.want), 8)])
		}
		if s, ok := readString(got); !ok || len(s) != len(got)-1 && len(s) != len(got)-2 {
			t.Errorf("readString(appendString(%.20q)) = %.20q, %v", tc.in, s, ok)
		}
	}
}

func TestFrames(t *testing.T) {
	req := Header{Flag: FlagRequest | FlagTwoWay | Hessian2, ID: 77}
	r := ErrorResponse(req, StatusServerTimeout, "no response within 1s")
	h, err := Decode(r, DefaultMaxBody)
	if err != nil || h.IsRequest() || h.Status != StatusServerTimeout || h.ID != 77 || h.Len != len(r)-HeaderLen || h.Serialization() != Hessian2 {
		t.Fatalf("ErrorResponse: %+v, %v", h, err)
	}
	if m := ErrorMessage(r[HeaderLen:]); m != "no response within 1s" {
		t.Errorf("message %q", m)
	}
	hb, _ := Decode(Heartbeat(9), DefaultMaxBody)
	if !hb.IsRequest() || !hb.TwoWay() || !hb.Event() || hb.ID != 9 {
		t.Errorf("Heartbeat: %+v", hb)
	}
	resp := HeartbeatResponse(hb)
	if h, err := Decode(resp, DefaultMaxBody); err != nil || h.IsRequest() || !h.Event() || h.ID != 9 || h.Status != StatusOK || resp[HeaderLen] != 'N' {
		t.Errorf("HeartbeatResponse: %+v, %v", h, err)
	}
	ro := ReadOnlyEvent(3)
	if h, err := Decode(ro, DefaultMaxBody); err != nil || !h.IsRequest() || h.TwoWay() || !h.Event() || ErrorMessage(ro[HeaderLen:]) != "R" {
		t.Errorf("ReadOnlyEvent: %+v, %v", h, err)
	}
}

func TestReader(t *testing.T) {
	var stream []byte
	bodies := []string{"", "x", strings.Repeat("y", 100), strings.Repeat("z", 5000)}
	for i, b := range bodies {
		stream = append(stream, request(uint64(i), b)...)
	}
	// a buffer of 64 bytes: the 100- and 5000-byte frames are read into
	// slices of their own; one byte per read stresses the boundaries.
	rd := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 64, DefaultMaxBody)
	for i, b := range bodies {
		h, f, err := rd.Next()
		if err != nil || h.ID != uint64(i) || string(f[HeaderLen:]) != b {
			t.Fatalf("frame %d: %+v, %d bytes, %v", i, h, len(f), err)
		}
	}
	if _, _, err := rd.Next(); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
	for _, cut := range []int{3, HeaderLen, HeaderLen + 50} {
		rd := NewReader(bytes.NewReader(request(1, strings.Repeat("q", 100))[:cut]), 4096, DefaultMaxBody)
		if _, _, err := rd.Next(); !errors.Is(err, ErrTruncated) || !IsBadFrame(err) {
			t.Errorf("cut at %d: %v, want ErrTruncated", cut, err)
		}
	}
	rd = NewReader(bytes.NewReader(request(1, strings.Repeat("q", 100))), 4096, 99)
	if _, _, err := rd.Next(); !errors.Is(err, ErrBodySize) || !IsBadFrame(err) {
		t.Errorf("over the maximum: %v", err)
	}
}

package zookeeper

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestReaderLimits(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(r *reader) any
		want any
		bad  bool
	}{
		{"int", be32(-5), func(r *reader) any { return r.int32() }, int32(-5), false},
		{"short int", []byte{1, 2}, func(r *reader) any { return r.int32() }, int32(0), true},
		{"long", cat(be32(1), be32(2)), func(r *reader) any { return r.int64() }, int64(1<<32 | 2), false},
		{"bool", []byte{7}, func(r *reader) any { return r.bool() }, true, false},
		{"buffer", cat(be32(3), []byte("abc")), func(r *reader) any { return r.buffer() }, []byte("abc"), false},
		{"empty buffer is not null", be32(0), func(r *reader) any { return r.buffer() }, []byte{}, false},
		{"null buffer", be32(-1), func(r *reader) any { return r.buffer() }, []byte(nil), false},
		{"buffer longer than what is left", cat(be32(10), []byte("abc")), func(r *reader) any { return r.buffer() }, []byte(nil), true},
		{"buffer over jute.maxbuffer", be32(maxBuffer + 1), func(r *reader) any { return r.buffer() }, []byte(nil), true},
		{"negative buffer length", be32(-2), func(r *reader) any { return r.buffer() }, []byte(nil), true},
		{"string", cat(be32(2), []byte("/a")), func(r *reader) any { return r.string() }, "/a", false},
		{"null string reads empty", be32(-1), func(r *reader) any { return r.string() }, "", false},
		{"huge string", be32(1 << 30), func(r *reader) any { return r.string() }, "", true},
		{"vector", cat(be32(2), be32(1), []byte("a"), be32(0)), func(r *reader) any { return r.strings() }, []string{"a", ""}, false},
		{"vector count past the bytes", cat(be32(1<<20), be32(0)), func(r *reader) any { return r.strings() }, []string{}, true},
		{"negative vector count", be32(-7), func(r *reader) any { return r.strings() }, []string{}, true},
		{"null vector", be32(-1), func(r *reader) any { return r.strings() }, []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReader(tt.in)
			got := tt.read(r)
			if (r.err != nil) != tt.bad {
				t.Fatalf("err = %v, want error %v", r.err, tt.bad)
			}
			if tt.bad && !errors.Is(r.err, errMalformed) {
				t.Fatalf("err = %v, want errMalformed", r.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestReaderErrorSticks(t *testing.T) {
	r := newReader([]byte{0, 0})
	r.int32()
	first := r.err
	if r.int64() != 0 || r.string() != "" || r.err != first {
		t.Fatalf("reads after an error: err %v, first %v", r.err, first)
	}
}

func TestWriterFrame(t *testing.T) {
	w := newWriter()
	w.int32(1)
	w.int64(2)
	w.bool(true)
	w.buffer(nil)
	w.buffer([]byte{})
	w.string("x")
	w.strings([]string{"a"})
	f := w.frame()
	want := cat(be32(int32(len(f)-4)), be32(1), be32(0), be32(2), []byte{1}, be32(-1), be32(0), be32(1), []byte("x"), be32(1), be32(1), []byte("a"))
	if !bytes.Equal(f, want) {
		t.Fatalf("frame\n got %x\nwant %x", f, want)
	}
}

func TestConnectRequest(t *testing.T) {
	base := cat(be32(0), be32(0), be32(7), be32(5000), be32(0), be32(9), be32(16), make([]byte, 16))
	tests := []struct {
		name   string
		in     []byte
		want   connectRequest
		hasErr bool
	}{
		{"3.3 client: no readOnly byte", base, connectRequest{LastZxidSeen: 7, TimeOut: 5000, SessionID: 9, Passwd: make([]byte, 16)}, false},
		{"readOnly byte", cat(base, []byte{1}), connectRequest{LastZxidSeen: 7, TimeOut: 5000, SessionID: 9, Passwd: make([]byte, 16), ReadOnly: true, HasReadOnly: true}, false},
		{"truncated password", base[:len(base)-3], connectRequest{LastZxidSeen: 7, TimeOut: 5000, SessionID: 9}, true},
		{"empty", nil, connectRequest{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeConnectRequest(tt.in)
			if (err != nil) != tt.hasErr {
				t.Fatalf("err = %v", err)
			}
			if !tt.hasErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// The response carries the readOnly byte only to a client that sent one.
	for _, ro := range []bool{false, true} {
		f := (&connectResponse{TimeOut: 4000, SessionID: 3, Passwd: make([]byte, 16), HasReadOnly: ro}).frame()
		want := 4 + 4 + 4 + 8 + 4 + 16
		if ro {
			want++
		}
		if len(f) != want {
			t.Errorf("readOnly %v: frame of %d bytes, want %d", ro, len(f), want)
		}
	}
}

func TestDecodeMulti(t *testing.T) {
	hdr := func(typ int32, done bool) []byte {
		d := byte(0)
		if done {
			d = 1
		}
		return cat(be32(typ), []byte{d}, be32(-1))
	}
	str := func(s string) []byte { return cat(be32(int32(len(s))), []byte(s)) }
	ops := cat(
		hdr(opCreate, false), str("/a"), be32(-1), be32(0), be32(1),
		hdr(opDelete, false), str("/b"), be32(3),
		hdr(opSetData, false), str("/c"), be32(1), []byte("x"), be32(-1),
		hdr(opCheck, false), str("/d"), be32(2),
		hdr(-1, true),
	)
	r := newReader(ops)
	got := decodeMulti(r, isWriteOp)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []multiOp{
		{Op: opCreate, Create: createRequest{Path: "/a", ACL: []acl{}, Flags: 1, TTL: -1}},
		{Op: opDelete, PV: pathVersion{Path: "/b", Version: 3}},
		{Op: opSetData, SetData: setDataRequest{Path: "/c", Data: []byte("x"), Version: -1}},
		{Op: opCheck, PV: pathVersion{Path: "/d", Version: 2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"a read op in a multi", cat(hdr(opGetData, false), str("/a"), []byte{0}, hdr(-1, true))},
		{"no done header", cat(hdr(opDelete, false), str("/b"), be32(3))},
		{"truncated op", cat(hdr(opSetData, false), str("/c"))},
	} {
		r := newReader(tt.in)
		decodeMulti(r, isWriteOp)
		if r.err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestMultiResultsEncoding(t *testing.T) {
	w := newWriter()
	encodeMultiResults(w, []multiResult{{Type: opError, Err: codeOK}, {Type: opError, Err: codeNoNode}, {Type: opCreate, Path: "/x"}})
	r := newReader(w.frame()[4:])
	var got []string
	for {
		typ, done, err := r.int32(), r.bool(), r.int32()
		if done || r.err != nil {
			break
		}
		switch typ {
		case opError:
			got = append(got, code(r.int32()).String()+"/"+code(err).String())
		case opCreate:
			got = append(got, r.string())
		}
	}
	if r.err != nil || !reflect.DeepEqual(got, []string{"OK/OK", "NoNode/NoNode", "/x"}) {
		t.Fatalf("got %v, err %v", got, r.err)
	}
}

func TestFrameLength(t *testing.T) {
	for _, n := range []int32{-1, maxBuffer + 1, 1 << 30} {
		if _, err := readFrameBody(bytes.NewReader(nil), n); !errors.Is(err, errFrameLength) {
			t.Errorf("length %d: err %v, want errFrameLength", n, err)
		}
	}
	if b, err := readFrameBody(bytes.NewReader([]byte("ab")), 2); err != nil || string(b) != "ab" {
		t.Errorf("readFrameBody = %q, %v", b, err)
	}
}

package zookeeper

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// connectRequest encodes a ConnectRequest as go-zookeeper does, with
// tail (a readOnly flag, from other clients) after the password.
func connectRequest(sid int64, passwd []byte, tail ...byte) []byte {
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint32(b, 0)           // protocolVersion
	b = binary.BigEndian.AppendUint64(b, 0x1234)      // lastZxidSeen
	b = binary.BigEndian.AppendUint32(b, 2000)        // timeOut
	b = binary.BigEndian.AppendUint64(b, uint64(sid)) // sessionId
	b = binary.BigEndian.AppendUint32(b, uint32(len(passwd)))
	b = append(b, passwd...)
	b = append(b, tail...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestRewriteConnectRequest(t *testing.T) {
	pw := bytes.Repeat([]byte{0xab}, 16)
	zero := make([]byte, 16)
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []byte
		rewrote bool
	}{
		{"new session", connectRequest(0, zero), connectRequest(0x100000b8fdb0002, pw), true},
		{"readOnly kept", connectRequest(0, zero, 1), connectRequest(0x100000b8fdb0002, pw, 1), true},
		{"no password yet", connectRequest(0, nil), connectRequest(0x100000b8fdb0002, pw), true},
		{"the library's own session", connectRequest(7, pw), connectRequest(7, pw), false},
		{"short", connectRequest(0, zero)[:20], connectRequest(0, zero)[:20], false},
		{"not one whole packet", connectRequest(0, zero)[:40], connectRequest(0, zero)[:40], false},
		{"password past the end", func() []byte {
			b := connectRequest(0, zero)
			binary.BigEndian.PutUint32(b[reqPasswdOff:], 99)
			return b
		}(), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rewrote := rewriteConnectRequest(tc.in, 0x100000b8fdb0002, pw)
			want := tc.want
			if want == nil {
				want = tc.in
			}
			if rewrote != tc.rewrote || !bytes.Equal(got, want) {
				t.Errorf("rewrite = %x, %v\n want %x, %v", got, rewrote, want, tc.rewrote)
			}
		})
	}
}

func TestParseConnectResponse(t *testing.T) {
	pw := bytes.Repeat([]byte{0xcd}, 16)
	resp := make([]byte, 4, 64)
	resp = binary.BigEndian.AppendUint32(resp, 0)    // protocolVersion
	resp = binary.BigEndian.AppendUint32(resp, 4000) // timeOut
	resp = binary.BigEndian.AppendUint64(resp, 0x42) // sessionId
	resp = binary.BigEndian.AppendUint32(resp, uint32(len(pw)))
	resp = append(resp, pw...)
	binary.BigEndian.PutUint32(resp, uint32(len(resp)-4))

	for n := range len(resp) {
		if _, _, done, _ := parseConnectResponse(resp[:n]); done {
			t.Fatalf("done after %d of %d bytes", n, len(resp))
		}
	}
	sid, got, done, ok := parseConnectResponse(append(resp, 0, 0, 0)) // and the next packet
	if !done || !ok || sid != 0x42 || !bytes.Equal(got, pw) {
		t.Errorf("parse = %x, %x, %v, %v; want 42, %x, true, true", sid, got, done, ok, pw)
	}
	for _, bad := range [][]byte{
		{0, 0, 0, 3},       // too short to be one
		{0x7f, 0, 0, 0, 1}, // far too long
	} {
		if _, _, done, ok := parseConnectResponse(bad); !done || ok {
			t.Errorf("parse(%x) = done %v, ok %v; want done, not ok", bad, done, ok)
		}
	}
	bad := bytes.Clone(resp)
	binary.BigEndian.PutUint32(bad[20:], 99) // password past the end
	if _, _, done, ok := parseConnectResponse(bad); !done || ok {
		t.Errorf("parse with a bad password length = done %v, ok %v; want done, not ok", done, ok)
	}
}

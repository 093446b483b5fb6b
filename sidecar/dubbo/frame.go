// Package dubbo is Dubbo's own protocol (dubbo://) in the sidecar: the
// frame codec (this file and hessian.go) and a per-request proxy
// (proxy.go, upstream.go, downstream.go) that balances each call of a
// multiplexed connection over a cluster's endpoints, times calls out and
// feeds outlier detection.
//
// A frame is a 16-byte header and a body:
//
//	0-1   magic 0xdabb
//	2     flag: 0x80 request, 0x40 two-way, 0x20 event, low 5 bits serialization id
//	3     status (responses): 20 OK, 30 client timeout, 31 server timeout, ...
//	4-11  request id, big endian
//	12-15 body length, big endian, signed
//
// The proxy reads headers only; bodies pass through unparsed.
package dubbo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the length of a frame header.
const HeaderLen = 16

// Magic starts every frame.
const Magic = 0xdabb

// DefaultMaxBody is Dubbo's default payload limit (8 MiB).
const DefaultMaxBody = 8 << 20

// Flag bits.
const (
	FlagRequest = 0x80
	FlagTwoWay  = 0x40
	FlagEvent   = 0x20
	serialMask  = 0x1f
)

// Hessian2 is the serialization id of hessian2, Dubbo's default.
const Hessian2 = 2

// Response statuses (org.apache.dubbo.remoting.exchange.Response).
const (
	StatusOK                  = 20
	StatusClientTimeout       = 30
	StatusServerTimeout       = 31
	StatusChannelInactive     = 35
	StatusBadRequest          = 40
	StatusBadResponse         = 50
	StatusServiceNotFound     = 60
	StatusServiceError        = 70
	StatusServerError         = 80
	StatusClientError         = 90
	StatusThreadpoolExhausted = 100
)

// Errors of Decode; the proxy counts them as bad frames and closes the
// connection they came on.
var (
	ErrMagic    = errors.New("dubbo: bad magic")
	ErrBodySize = errors.New("dubbo: body length out of range")
	ErrShort    = errors.New("dubbo: short header")
	ErrFlags    = errors.New("dubbo: bad flags")
)

// Header is a decoded frame header.
type Header struct {
	Flag   byte
	Status byte
	ID     uint64
	Len    int // body length
}

// IsRequest, TwoWay and Event read the flag.
func (h Header) IsRequest() bool { return h.Flag&FlagRequest != 0 }

// TwoWay says a request expects a response.
func (h Header) TwoWay() bool { return h.Flag&FlagTwoWay != 0 }

// Event says the frame is an event (a heartbeat, a read-only notice).
func (h Header) Event() bool { return h.Flag&FlagEvent != 0 }

// Serialization is the body's serialization id.
func (h Header) Serialization() byte { return h.Flag & serialMask }

// Decode reads a header from b, which must hold at least HeaderLen
// bytes. Strict: the magic, a body length in [0, maxBody], and flags
// Dubbo sends (a response is never two-way; serialization id not 0).
func Decode(b []byte, maxBody int) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShort
	}
	if binary.BigEndian.Uint16(b) != Magic {
		return Header{}, fmt.Errorf("%w: %#04x", ErrMagic, binary.BigEndian.Uint16(b))
	}
	h := Header{Flag: b[2], Status: b[3], ID: binary.BigEndian.Uint64(b[4:]), Len: int(int32(binary.BigEndian.Uint32(b[12:])))}
	if h.Len < 0 || h.Len > maxBody {
		return Header{}, fmt.Errorf("%w: %d (max %d)", ErrBodySize, h.Len, maxBody)
	}
	if h.Serialization() == 0 || (!h.IsRequest() && h.TwoWay()) {
		return Header{}, fmt.Errorf("%w: %#02x", ErrFlags, h.Flag)
	}
	return h, nil
}

// Put writes h into b[:HeaderLen].
func (h Header) Put(b []byte) {
	binary.BigEndian.PutUint16(b, Magic)
	b[2], b[3] = h.Flag, h.Status
	binary.BigEndian.PutUint64(b[4:], h.ID)
	binary.BigEndian.PutUint32(b[12:], uint32(int32(h.Len)))
}

// SetID rewrites the request id of the frame header in b.
func SetID(b []byte, id uint64) { binary.BigEndian.PutUint64(b[4:], id) }

// nullBody is hessian2's null, the body of a heartbeat and its answer.
var nullBody = []byte{'N'}

// HeartbeatResponse is the answer to a heartbeat request h.
func HeartbeatResponse(h Header) []byte {
	b := make([]byte, HeaderLen+1)
	Header{Flag: FlagEvent | h.Serialization(), Status: StatusOK, ID: h.ID, Len: 1}.Put(b)
	b[HeaderLen] = nullBody[0]
	return b
}

// Heartbeat is a two-way heartbeat request with id.
func Heartbeat(id uint64) []byte {
	b := make([]byte, HeaderLen+1)
	Header{Flag: FlagRequest | FlagTwoWay | FlagEvent | Hessian2, ID: id, Len: 1}.Put(b)
	b[HeaderLen] = nullBody[0]
	return b
}

// ReadOnlyEvent is the one-way event a provider sends when it shuts
// down gracefully: its body is the hessian2 string "R". A consumer stops
// sending new calls on that connection.
func ReadOnlyEvent(id uint64) []byte {
	body := appendString(nil, "R")
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	Header{Flag: FlagRequest | FlagEvent | Hessian2, ID: id, Len: len(body)}.Put(b)
	return append(b, body...)
}

// ErrorResponse is a response to request h with status and msg as its
// body. Dubbo's body of a response whose status is not OK is one
// string, the error message; it is written in hessian2 whatever the
// request's serialization id says (see appendString).
func ErrorResponse(h Header, status byte, msg string) []byte {
	body := appendString(nil, msg)
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	Header{Flag: Hessian2, Status: status, ID: h.ID, Len: len(body)}.Put(b)
	return append(b, body...)
}

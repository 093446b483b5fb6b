// Package stats holds the sidecar's counters: plain atomics on the hot
// path, read only when /stats or /metrics is asked. Nothing here locks.
package stats

import "sync/atomic"

// Failure kinds, as counted per listener, cluster and endpoint.
const (
	ConnectRefused = iota
	ConnectTimeout
	FirstByteTimeout
	RequestTimeout
	Status5xx
	GRPCUnavailable
	Overflow  // connection limit or retry budget reached
	NoHealthy // no endpoint to send to
	Other
	DubboStatus     // a Dubbo response with an error status (timeout, server error, overloaded...)
	BadFrame        // bad input: a frame that is not the protocol's (its connection is closed)
	UnknownResponse // a response whose id is not in flight (late after a time-out): dropped
	HeadTimeout     // a request head not read whole in time (slow client): closed
	ConnLimit       // a connection refused: the listener has its most open
	NumKinds
)

// KindNames are the JSON and label names of the failure kinds, by index.
var KindNames = [NumKinds]string{
	"connect_refused", "connect_timeout", "first_byte_timeout", "request_timeout",
	"status_5xx", "grpc_unavailable", "overflow", "no_healthy", "other",
	"dubbo_error", "bad_frame", "unknown_response", "head_timeout", "conn_limit",
}

// Counters is what every listener, cluster and endpoint counts.
type Counters struct {
	ConnsTotal  atomic.Uint64
	ConnsActive atomic.Int64
	Requests    Counter // added to by every request: sharded (Counter)
	Retries     atomic.Uint64
	BytesIn     Counter // from the client (or towards the upstream)
	BytesOut    Counter // towards the client
	Failures    [NumKinds]atomic.Uint64
}

// Fail counts one failure of kind k.
func (c *Counters) Fail(k int) { c.Failures[k].Add(1) }

// View is Counters as JSON.
type View struct {
	ConnsTotal  uint64            `json:"connections_total"`
	ConnsActive int64             `json:"connections_active"`
	Requests    uint64            `json:"requests"`
	Retries     uint64            `json:"retries"`
	BytesIn     uint64            `json:"bytes_in"`
	BytesOut    uint64            `json:"bytes_out"`
	Failures    map[string]uint64 `json:"failures"`
}

// View reads the counters.
func (c *Counters) View() View {
	v := View{
		ConnsTotal: c.ConnsTotal.Load(), ConnsActive: c.ConnsActive.Load(),
		Requests: c.Requests.Load(), Retries: c.Retries.Load(),
		BytesIn: c.BytesIn.Load(), BytesOut: c.BytesOut.Load(),
		Failures: map[string]uint64{},
	}
	for i := range c.Failures {
		if n := c.Failures[i].Load(); n > 0 {
			v.Failures[KindNames[i]] = n
		}
	}
	return v
}

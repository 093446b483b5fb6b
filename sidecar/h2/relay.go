package h2

import (
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/detourmesh/detour/sidecar/observe"
	"github.com/detourmesh/detour/sidecar/stats"
)

// reqData relays the client's DATA; a body that disagrees with its
// content-length is a stream error.
func (st *stream) reqData(p []byte, end bool) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.recvd += int64(len(p))
	if l := st.req.length; l >= 0 && (st.recvd > l || (end && st.recvd != l)) {
		return http2.StreamError{StreamID: st.down.id, Code: http2.ErrCodeProtocol}
	}
	if end {
		st.endRecv()
	}
	if st.done && st.up == nil {
		return nil
	}
	if !st.over {
		if len(st.kept)+len(p) > st.p.BodyLimit {
			st.over, st.kept = true, nil
		} else {
			st.kept = append(st.kept, p...)
		}
	}
	if st.up == nil {
		st.early = append(st.early, p...)
		return nil
	}
	n := st.up.c.send(st.up, p, end, nil)
	st.upWrote(st.up, n)
	return nil
}

// endRecv marks the client's side of the stream ended.
func (st *stream) endRecv() {
	st.reqEnd = true
	c, h := st.sc.conn, st.down
	c.mu.Lock()
	h.recvEnd = true
	if h.sent {
		c.forgetLocked(h)
	}
	c.mu.Unlock()
	if st.done {
		st.sc.streamDone()
	}
}

// reqTrailers relays the client's trailers (which end its side).
func (st *stream) reqTrailers(fs []hpack.HeaderField) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if l := st.req.length; l >= 0 && st.recvd != l {
		return http2.StreamError{StreamID: st.down.id, Code: http2.ErrCodeProtocol}
	}
	out := make([]hpack.HeaderField, 0, len(fs))
	for _, hf := range fs {
		if !dropOut(hf.Name) {
			out = append(out, hf)
		}
	}
	st.reqTrail = out
	st.endRecv()
	if st.up != nil && !st.done {
		n := st.up.c.send(st.up, nil, true, out)
		st.upWrote(st.up, n)
	}
	return nil
}

// downReset: the client reset the stream (or its connection is gone).
func (st *stream) downReset(code http2.ErrCode) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.reqEnd = true
	if st.done {
		return
	}
	// The client gave up: no verdict on the endpoint (l7.Egress counts
	// a cancel before the answer as its failure, which ejects endpoints
	// for clients' deadlines).
	st.endEp()
	st.releaseUp()
	st.finish()
}

// respHeaders relays an upstream's response HEADERS or trailers; a
// retriable answer (a retriable status, or gRPC UNAVAILABLE before any
// response was relayed) is retried instead when the rules allow.
func (st *stream) respHeaders(h *half, f *http2.MetaHeadersFrame) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if h != st.up || st.done {
		return
	}
	fields, status, gs := respFields(f.Fields)
	end := f.StreamEnded()
	if st.started {
		if !end || status != 0 {
			st.upBroke(http2.ErrCodeProtocol)
			return
		}
		st.grpcStatus = gs
		st.sc.send(st.down, nil, true, fields)
		st.respDone()
		return
	}
	if status < 200 || status > 999 {
		if status < 100 || end {
			st.upBroke(http2.ErrCodeProtocol)
		}
		return // 1xx: dropped
	}
	st.stopTimer()
	unavailable := gs == "14"
	if (st.p.Retriable[status] || unavailable) && st.canRetry() {
		st.verdict(status, unavailable)
		st.releaseUp()
		st.endEp()
		st.retry()
		return
	}
	st.started, st.status = true, status
	if end {
		st.grpcStatus = gs
	}
	st.sc.conn.headers(st.down, fields, end)
	if end {
		st.respDone()
	}
}

// respData relays an upstream's DATA; its window is credited as the
// bytes reach the client.
func (st *stream) respData(h *half, p []byte, end bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if h != st.up || st.done {
		return
	}
	if !st.started {
		st.upBroke(http2.ErrCodeProtocol)
		return
	}
	if st.ep != nil {
		st.ep.Stats.BytesOut.Add(uint64(len(p)))
		st.p.Cluster.Stats.BytesOut.Add(uint64(len(p)))
	}
	n := st.sc.send(st.down, p, end, nil)
	h.c.credit(h, n)
	if end {
		st.respDone()
	}
}

// upReset: the upstream reset the stream. A refused stream was never
// processed and goes again.
func (st *stream) upReset(h *half, code http2.ErrCode) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if h != st.up || st.done {
		return
	}
	if code == http2.ErrCodeRefusedStream && !st.started {
		st.resend()
		return
	}
	if code == http2.ErrCodeCancel {
		// The upstream gave up (its deadline, from grpc-timeout, say):
		// the client hears the same, and the endpoint is not at fault.
		st.releaseUp()
		st.endEp()
		st.resetDown(code)
		return
	}
	st.upBroke(code)
}

// upGone: the upstream connection closed (unprocessed: its GOAWAY said
// the stream was not processed).
func (st *stream) upGone(h *half, unprocessed bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if h != st.up || st.done {
		return
	}
	if unprocessed && !st.started {
		st.resend()
		return
	}
	st.upBroke(http2.ErrCodeInternal)
}

// resend sends a request the upstream never processed again, on another
// connection to the same endpoint (as net/http's GetBody does).
func (st *stream) resend() {
	st.up = nil
	if st.over || st.resends >= maxResends {
		st.stopTimer()
		st.endEp()
		st.resetDown(http2.ErrCodeRefusedStream)
		return
	}
	st.resends++
	st.open(st.addr())
}

// upBroke ends a stream whose upstream failed: 502 if nothing was
// relayed yet, else a reset.
func (st *stream) upBroke(code http2.ErrCode) {
	st.releaseUp()
	if !st.started {
		st.failEp(stats.Other)
		st.answer(http.StatusBadGateway, "sidecar: upstream: stream reset: "+code.String())
		return
	}
	st.verdict(st.status, st.grpcStatus == "14")
	st.endEp()
	if code == http2.ErrCodeNo {
		code = http2.ErrCodeInternal
	}
	st.resetDown(code)
}

// respDone: the response is relayed whole (or queued behind the
// client's window).
func (st *stream) respDone() {
	st.verdict(st.status, st.grpcStatus == "14")
	st.endEp()
	st.releaseUp()
	st.finish()
}

func (st *stream) resetDown(code http2.ErrCode) {
	st.sc.reset(st.down, code)
	st.finish()
}

// answer is the sidecar's own response: a text body, as http.Error.
func (st *stream) answer(code int, msg string) {
	if st.started {
		st.resetDown(http2.ErrCodeInternal)
		return
	}
	body := msg + "\n"
	st.started, st.status = true, code
	st.sc.conn.headers(st.down, []hpack.HeaderField{
		{Name: ":status", Value: strconv.Itoa(code)},
		{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "x-content-type-options", Value: "nosniff"},
		{Name: "content-length", Value: strconv.Itoa(len(body))},
	}, false)
	st.sc.send(st.down, []byte(body), true, nil)
	st.finish()
}

// answerGRPC is a trailers-only gRPC answer.
func (st *stream) answerGRPC(code int, msg string) {
	st.started, st.status, st.grpcStatus = true, http.StatusOK, strconv.Itoa(code)
	st.sc.conn.headers(st.down, []hpack.HeaderField{
		{Name: ":status", Value: "200"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "grpc-status", Value: st.grpcStatus},
		{Name: "grpc-message", Value: msg},
	}, true)
	st.finish()
}

// refuse answers a request over the inbound limit, as l7's refuseH2.
func (st *stream) refuse(ra time.Duration) {
	if st.req.grpc {
		st.answerGRPC(8, "sidecar: inbound limit")
		return
	}
	body := "sidecar: inbound limit\n"
	st.started, st.status = true, http.StatusTooManyRequests
	st.sc.conn.headers(st.down, []hpack.HeaderField{
		{Name: ":status", Value: "429"},
		{Name: "retry-after", Value: strconv.Itoa(max(1, int((ra+time.Second-1)/time.Second)))},
		{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "x-content-type-options", Value: "nosniff"},
		{Name: "content-length", Value: strconv.Itoa(len(body))},
	}, false)
	st.sc.send(st.down, []byte(body), true, nil)
	st.finish()
}

// finish does a stream's accounting once; the client's side of the
// stream may still be draining.
func (st *stream) finish() {
	if st.done {
		return
	}
	st.done = true
	st.stopTimer()
	st.early, st.kept = nil, nil
	p := st.p
	if st.counted {
		p.inflight.Add(-1)
		p.retrying.Add(-int64(st.retries))
	}
	if st.limited {
		p.Limit.Release()
	}
	if p.Observe != nil {
		r := observe.Request{Method: st.req.method, Path: st.req.urlPath(), Proto: "HTTP/2.0",
			Remote: st.sc.remote, Status: st.status, GRPCStatus: st.grpcStatus}
		if r.Status == 0 {
			r.Status = http.StatusOK
		}
		observe.EndSpan(st.span, r)
		p.Observe.Done(r, st.start)
	}
	if !st.reqEnd {
		st.sc.closeEarly(st.down)
	}
	st.sc.streamDone()
}

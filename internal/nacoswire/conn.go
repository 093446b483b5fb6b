package nacoswire

import (
	"context"
	"net"
	"sync"
	"time"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"google.golang.org/grpc/peer"
)

// The connection bookkeeping a Nacos server needs on top of gRPC, shared
// by the agent's front end and the test server: a Nacos connection is
// one TCP connection, found by its peer address.

// OnClose wraps nc so that closing it (by gRPC or by the server) calls
// f once, after the TCP connection is closed.
func OnClose(nc net.Conn, f func()) net.Conn { return &closeHook{Conn: nc, f: f} }

type closeHook struct {
	net.Conn
	f    func()
	once sync.Once
	err  error
}

func (t *closeHook) Close() error {
	t.once.Do(func() {
		t.err = t.Conn.Close()
		t.f()
	})
	return t.err
}

// PeerAddr is the remote address a request or stream arrived from, the
// key of its connection.
func PeerAddr(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "", false
	}
	return p.Addr.String(), true
}

// AwaitSetup waits for setupDone, up to grace or ctx's end. Nacos
// answers a request before the connection's setup with "connection is
// unregistered" (the SDK reconnects); a request that overtook its setup
// on a loaded machine waits instead.
func AwaitSetup(ctx context.Context, setupDone <-chan struct{}, grace time.Duration) {
	select {
	case <-setupDone:
		return
	default:
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-setupDone:
	case <-t.C:
	case <-ctx.Done():
	}
}

// Unregistered is the answer to a request on a connection the server
// does not hold.
func Unregistered(requestID string) *pb.Payload {
	return ErrorPayload(requestID, CodeUnregistered, "Connection is unregistered.")
}

// ServerCheck answers p if it is a ServerCheckRequest, which a client
// sends before its setup to learn its connection ID; nil otherwise.
func ServerCheck(p *pb.Payload, connID string) *pb.Payload {
	if p.GetMetadata().GetType() != TypeServerCheck {
		return nil
	}
	return Encode(TypeServerCheckResp, ServerCheckResponse{Response: OK(""), ConnectionID: connID})
}

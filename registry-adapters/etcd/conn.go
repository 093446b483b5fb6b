package etcd

import (
	"context"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// connState follows the client's gRPC connection, so watchers notice an
// outage. etcd's client resumes a broken watch by itself once the server
// is back, but says nothing meanwhile: without this a watcher would block
// in silence for as long as etcd is down.
type connState struct {
	conn *grpc.ClientConn

	mu     sync.Mutex
	failed bool
	// next ends when the connection next fails.
	next       context.Context
	cancelNext context.CancelFunc
}

func newConnState(conn *grpc.ClientConn) *connState {
	c := &connState{conn: conn}
	c.next, c.cancelNext = context.WithCancel(context.Background())
	return c
}

// lost returns a context that ends when the connection next enters
// TRANSIENT_FAILURE (or shuts down).
func (c *connState) lost() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// setFailed records the state and reports whether it changed.
func (c *connState) setFailed(failed bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if failed == c.failed {
		return false
	}
	c.failed = failed
	if failed {
		c.cancelNext()
		c.next, c.cancelNext = context.WithCancel(context.Background())
	}
	return true
}

// monitor tracks the connection's state until ctx ends or the connection
// shuts down.
func (c *connState) monitor(ctx context.Context, log *zap.Logger) {
	state := c.conn.GetState()
	for {
		switch state {
		case connectivity.TransientFailure:
			if c.setFailed(true) {
				log.Warn("connection to etcd failed")
			}
		case connectivity.Ready:
			if c.setFailed(false) {
				log.Info("connection to etcd restored")
			}
		case connectivity.Shutdown:
			c.setFailed(true)
			return
		}
		if !c.conn.WaitForStateChange(ctx, state) {
			return
		}
		state = c.conn.GetState()
	}
}

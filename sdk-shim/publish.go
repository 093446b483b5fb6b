package shim

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/detourmesh/detour/api/agentpb"
)

// held is a publication the Client keeps published.
type held struct {
	req   PublishRequest
	dirty bool // to publish again: the agent may have forgotten it
}

// Publish publishes req on this host (waiting for the agent, within ctx)
// and holds it: whenever the connection to the agent is lost and made
// again (an agent restart forgets publications), the Client publishes it
// again by itself, until Unpublish or Close. Publishing the same service
// and port again updates it.
func (c *Client) Publish(ctx context.Context, req PublishRequest) (Publication, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Publication{}, ErrClosed
	}
	gen := c.gen
	c.mu.Unlock()
	p, err := c.api.Publish(ctx, req.pb(), grpc.WaitForReady(true))
	if err != nil {
		return Publication{}, fmt.Errorf("shim: publish %q: %w", req.Service, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Publication{}, ErrClosed
	}
	// A connection lost since gen may have lost this publication too.
	c.held[req.Service] = &held{req: req, dirty: c.gen != gen}
	c.kick()
	return publicationFromPB(p), nil
}

// Unpublish withdraws the publication of service on port and stops
// holding it. The agent keeps publications across its own restarts, so
// Unpublish waits (within ctx) for an agent that is restarting.
func (c *Client) Unpublish(ctx context.Context, service string, port int) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if h := c.held[service]; h != nil && h.req.Port == port {
		delete(c.held, service)
	}
	c.mu.Unlock()
	if _, err := c.api.Unpublish(ctx, &agentpb.UnpublishRequest{Service: service, Port: uint32(port)}, grpc.WaitForReady(true)); err != nil {
		return fmt.Errorf("shim: unpublish %q: %w", service, err)
	}
	return nil
}

func (c *Client) kick() {
	select {
	case c.holdWake <- struct{}{}:
	default:
	}
}

// holdLoop follows the connection to the agent: each time it leaves
// READY every held publication is marked, and once READY again they are
// published again (retried with backoff while that fails).
func (c *Client) holdLoop() {
	state := c.conn.GetState()
	delay := minBackoff
	for {
		retry := false
		switch state {
		case connectivity.Ready:
			if retry = !c.republish(); retry {
				delay = min(2*delay, maxBackoff)
			} else {
				delay = minBackoff
			}
		case connectivity.Idle:
			if c.holding() {
				c.conn.Connect()
			}
		}
		var ctx context.Context
		var cancel context.CancelFunc
		if retry {
			ctx, cancel = context.WithTimeout(c.ctx, delay)
		} else {
			ctx, cancel = context.WithCancel(c.ctx)
		}
		changed := make(chan bool, 1)
		go func() { changed <- c.conn.WaitForStateChange(ctx, state) }()
		var ok bool
		select {
		case ok = <-changed:
		case <-c.holdWake: // a new publication: see whether it needs work
			cancel()
			ok = <-changed
		}
		cancel()
		if c.ctx.Err() != nil {
			return
		}
		next := c.conn.GetState()
		if ok && state == connectivity.Ready {
			c.mu.Lock()
			c.gen++
			for _, h := range c.held {
				h.dirty = true
			}
			c.mu.Unlock()
		}
		state = next
	}
}

func (c *Client) holding() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held) > 0
}

// republish publishes every marked publication; false if any failed.
func (c *Client) republish() bool {
	c.mu.Lock()
	var todo []*held
	for _, h := range c.held {
		if h.dirty {
			todo = append(todo, h)
		}
	}
	gen := c.gen
	c.mu.Unlock()
	allOK := true
	for _, h := range todo {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		_, err := c.api.Publish(ctx, h.req.pb())
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn("publishing again failed; retrying", zap.String("service", h.req.Service), zap.Int("port", h.req.Port), zap.Error(err))
			}
			allOK = false
			continue
		}
		c.log.Info("published again", zap.String("service", h.req.Service), zap.Int("port", h.req.Port))
		c.mu.Lock()
		if c.gen == gen {
			h.dirty = false
		}
		c.mu.Unlock()
	}
	return allOK
}

package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/detourmesh/detour/api/agentpb"
)

// ErrClosed is returned by a Client's methods after Close.
var ErrClosed = errors.New("shim: client closed")

// Client talks to the naming agent of its host. Make one per app with New
// and Close it when the app stops.
type Client struct {
	cfg  Config
	log  *zap.Logger
	dial DialFunc
	conn *grpc.ClientConn
	api  agentpb.AgentClient

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	watches  map[string]*watch
	egress   map[string]*watch // egress address -> the service's watch
	held     map[string]*held  // publications, by service
	dialed   map[string]*watch // services Dial follows, until Close
	holdWake chan struct{}     // buffered 1: a publication was added
	gen      uint64            // times the agent connection left READY
}

// New connects to the agent at cfg.Agent (lazily: New does not wait for
// it) and starts the loop that keeps publications published.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("shim: config: %w", err)
	}
	o := options{logger: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dial == nil {
		var d net.Dialer
		o.dial = d.DialContext
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if o.token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(tokenCreds(o.token)))
	}
	conn, err := grpc.NewClient("passthrough:///"+cfg.Agent, append(dopts,
		grpc.WithIdleTimeout(0), // keep the connection: its loss tells of an agent restart
		grpc.WithConnectParams(grpc.ConnectParams{
			// The agent is local: reconnect fast when it comes back.
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: cfg.DialTimeout,
		}))...)
	if err != nil {
		return nil, fmt.Errorf("shim: agent %s: %w", cfg.Agent, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg: cfg, log: o.logger.Named("shim"), dial: o.dial, conn: conn, api: agentpb.NewAgentClient(conn),
		ctx: ctx, cancel: cancel,
		watches: map[string]*watch{}, egress: map[string]*watch{}, held: map[string]*held{}, dialed: map[string]*watch{},
		holdWake: make(chan struct{}, 1),
	}
	c.goLoop(c.holdLoop)
	return c, nil
}

func (c *Client) goLoop(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// Close unpublishes what the Client holds (within cfg.CloseTimeout),
// stops every watch, resolver and loop, and closes the connection to the
// agent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	pubs := c.held
	c.held = map[string]*held{}
	c.mu.Unlock()

	// Stop the loops first: a publication being published again must
	// not land after its unpublish.
	c.cancel()
	c.wg.Wait()
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CloseTimeout)
	for _, h := range pubs {
		// The agent keeps publications across its restarts: wait out one
		// (within CloseTimeout) rather than leave this one behind.
		if _, err := c.api.Unpublish(ctx, &agentpb.UnpublishRequest{Service: h.req.Service, Port: uint32(h.req.Port)}, grpc.WaitForReady(true)); err != nil {
			errs = append(errs, fmt.Errorf("shim: unpublish %q: %w", h.req.Service, err))
		}
	}
	cancel()
	if err := c.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("shim: agent connection: %w", err))
	}
	return errors.Join(errs...)
}

// Resolve asks the agent for the current answer for service.
func (c *Client) Resolve(ctx context.Context, service string) (Answer, error) {
	if c.isClosed() {
		return Answer{}, ErrClosed
	}
	a, err := c.api.Resolve(ctx, &agentpb.ResolveRequest{Service: service})
	if err != nil {
		return Answer{}, fmt.Errorf("shim: resolve %q: %w", service, err)
	}
	return answerFromPB(a), nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

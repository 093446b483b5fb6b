// Package nacoswiretest is a bare Nacos 2.x gRPC client for tests and
// benchmarks: the SDK's own stubs without its naming client, so a test
// sends exactly the payloads it means to (malformed ones too) and starts
// no goroutine it cannot stop.
package nacoswiretest

import (
	"context"
	"fmt"
	"sync"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/detourmesh/detour/internal/nacoswire"
)

// Client is one Nacos connection.
type Client struct {
	cc     *grpc.ClientConn
	req    pb.RequestClient
	stream pb.BiRequestStream_RequestBiStreamClient
	cancel context.CancelFunc
	done   chan struct{}

	// ConnectionID is what the server check answered.
	ConnectionID string

	mu     sync.Mutex
	pushes []*pb.Payload
	notify chan struct{}
}

// Dial connects to a Nacos gRPC address (the HTTP port + 1000), sends the
// server check, opens the bi-stream and, when setup is true, sends the
// ConnectionSetupRequest. Pushes received are kept (see Pushes).
func Dial(grpcAddr string, setup bool) (*Client, error) {
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cc: cc, req: pb.NewRequestClient(cc), cancel: cancel, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	resp, err := c.Raw(nacoswire.TypeServerCheck, map[string]any{})
	if err != nil {
		c.Close()
		return nil, err
	}
	var check nacoswire.ServerCheckResponse
	if err := nacoswire.Decode(resp, &check); err != nil || !check.Success {
		c.Close()
		return nil, fmt.Errorf("server check: %v %+v", err, check)
	}
	c.ConnectionID = check.ConnectionID
	if c.stream, err = pb.NewBiRequestStreamClient(cc).RequestBiStream(ctx); err != nil {
		c.Close()
		return nil, err
	}
	go c.recv()
	if setup {
		if err := c.stream.Send(nacoswire.Encode(nacoswire.TypeConnectionSetup, nacoswire.SetupRequest{
			ClientVersion: "nacoswiretest", Labels: map[string]string{"module": "naming", "source": "sdk"},
		})); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) recv() {
	defer close(c.done)
	for {
		p, err := c.stream.Recv()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.pushes = append(c.pushes, p)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Raw sends a payload of type typ with body's JSON.
func (c *Client) Raw(typ string, body any) (*pb.Payload, error) {
	return c.req.Request(context.Background(), nacoswire.Encode(typ, body))
}

// RawBytes sends a payload of type typ whose body is b as it is.
func (c *Client) RawBytes(typ string, b []byte) (*pb.Payload, error) {
	p := nacoswire.Encode(typ, struct{}{})
	p.Body.Value = b
	return c.req.Request(context.Background(), p)
}

// Do sends a request and decodes the answer into resp; an ErrorResponse
// or an unsuccessful answer is an error.
func (c *Client) Do(typ string, body, resp any) error {
	p, err := c.Raw(typ, body)
	if err != nil {
		return err
	}
	var r nacoswire.Response
	if err := nacoswire.Decode(p, &r); err != nil {
		return err
	}
	if !r.Success || p.GetMetadata().GetType() == nacoswire.TypeErrorResp {
		return fmt.Errorf("%s: %d %s", p.GetMetadata().GetType(), r.ErrorCode, r.Message)
	}
	if resp != nil {
		return nacoswire.Decode(p, resp)
	}
	return nil
}

// Pushes returns the payloads the server pushed so far.
func (c *Client) Pushes() []*pb.Payload {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*pb.Payload(nil), c.pushes...)
}

// Pushed is signalled after each push (coalesced).
func (c *Client) Pushed() <-chan struct{} { return c.notify }

// Close closes the connection.
func (c *Client) Close() {
	c.cancel()
	c.cc.Close()
	if c.stream != nil {
		<-c.done
	}
}

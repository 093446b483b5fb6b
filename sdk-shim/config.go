package shim

import (
	"context"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// Config is the Client's configuration.
type Config struct {
	// Agent is the naming agent's gRPC address (its grpc_listen).
	Agent string `yaml:"agent"`
	// DialTimeout bounds each connection attempt to the agent.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// CloseTimeout bounds the unpublishing Close does.
	CloseTimeout time.Duration `yaml:"close_timeout"`
}

// Default returns the defaults: the agent on 127.0.0.1:7701.
func Default() Config {
	return Config{Agent: "127.0.0.1:7701", DialTimeout: time.Second, CloseTimeout: 2 * time.Second}
}

// Validate reports the first invalid field, naming it.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Agent); err != nil {
		return fmt.Errorf("agent: %q: %w", c.Agent, err)
	}
	if c.DialTimeout <= 0 {
		return fmt.Errorf("dial_timeout: must be > 0")
	}
	if c.CloseTimeout <= 0 {
		return fmt.Errorf("close_timeout: must be > 0")
	}
	return nil
}

// DialFunc dials a network address, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Option configures New.
type Option func(*options)

type options struct {
	logger *zap.Logger
	dial   DialFunc
	token  string // the agent's API token (token.go); "": none
}

// WithLogger sets the logger; the Client logs under "shim". Default: none.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithDialer sets how the Client dials the services' endpoints (egress and
// fallback alike). Default: a net.Dialer.
func WithDialer(d DialFunc) Option { return func(o *options) { o.dial = d } }

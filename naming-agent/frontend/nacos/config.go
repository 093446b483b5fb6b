package nacos

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// GRPCPortOffset is how far above the HTTP port Nacos serves gRPC, and
// where its clients look for it.
const GRPCPortOffset = 1000

// Config configures a Server. Durations are written as strings in YAML.
type Config struct {
	// Listen is the HTTP address, "127.0.0.1:8848"; gRPC is served on its
	// port + 1000. Loopback only unless configured: this server checks no
	// credentials.
	Listen string `yaml:"listen"`
	// SetupTimeout is how long a new gRPC connection has to send its
	// ConnectionSetupRequest before it is closed.
	SetupTimeout time.Duration `yaml:"setup_timeout"`
	// MaxConnections caps the gRPC connections; one more is closed at
	// once. 0: no cap.
	MaxConnections int `yaml:"max_connections"`
	// MaxMessageBytes caps a gRPC message and an HTTP body.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// RestoreGrace is how long after the agent starts the publications of
	// an earlier run's connections are kept, so their apps (which
	// reconnect and register again by themselves) take them over without
	// a gap; those not taken over by then are ended.
	RestoreGrace time.Duration `yaml:"restore_grace"`
	// BeatTimeout ends an HTTP-registered ephemeral instance that sent no
	// heartbeat for this long (Nacos marks it unhealthy at 15 s and
	// deletes it at 30 s; unhealthy instances carry no traffic either).
	BeatTimeout time.Duration `yaml:"beat_timeout"`
}

// Default returns the defaults on Nacos's usual 127.0.0.1:8848.
func Default() Config {
	return Config{
		Listen:          "127.0.0.1:8848",
		SetupTimeout:    10 * time.Second,
		MaxConnections:  20000,
		MaxMessageBytes: 1 << 20,
		RestoreGrace:    30 * time.Second,
		BeatTimeout:     15 * time.Second,
	}
}

// Validate reports every invalid field, each error naming the field's
// YAML path ("setup_timeout: must be > 0").
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q: %v", c.Listen, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p+GRPCPortOffset > 65535 {
		bad("listen", "%q: port must be 0 to %d (gRPC is served on port + %d)", c.Listen, 65535-GRPCPortOffset, GRPCPortOffset)
	}
	if c.SetupTimeout <= 0 {
		bad("setup_timeout", "must be > 0, got %s", c.SetupTimeout)
	}
	if c.MaxConnections < 0 {
		bad("max_connections", "must be >= 0, got %d", c.MaxConnections)
	}
	if c.MaxMessageBytes < 4096 {
		bad("max_message_bytes", "must be at least 4096, got %d", c.MaxMessageBytes)
	}
	if c.RestoreGrace < 0 {
		bad("restore_grace", "must be >= 0, got %s", c.RestoreGrace)
	}
	if c.BeatTimeout <= 0 {
		bad("beat_timeout", "must be > 0, got %s", c.BeatTimeout)
	}
	return errors.Join(errs...)
}

// Listen binds addr (HTTP) and its port + 1000 (gRPC), both or neither.
// Port 0 picks a free pair. A taken port is an error naming it.
func Listen(addr string) (httpLn, grpcLn net.Listener, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("nacos front end: listen %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+GRPCPortOffset > 65535 {
		return nil, nil, fmt.Errorf("nacos front end: listen %q: port must be 0 to %d (gRPC is served on port + %d)", addr, 65535-GRPCPortOffset, GRPCPortOffset)
	}
	tries := 1
	if p == 0 {
		tries = 100
	}
	for range tries {
		httpLn, err = net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, fmt.Errorf("nacos front end: listen HTTP: %w", err)
		}
		hp := httpLn.Addr().(*net.TCPAddr).Port
		if hp+GRPCPortOffset <= 65535 {
			grpcLn, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(hp+GRPCPortOffset)))
			if err == nil {
				return httpLn, grpcLn, nil
			}
		} else {
			err = fmt.Errorf("port %d + %d is above 65535", hp, GRPCPortOffset)
		}
		httpLn.Close()
	}
	return nil, nil, fmt.Errorf("nacos front end: listen gRPC (port + %d): %w", GRPCPortOffset, err)
}

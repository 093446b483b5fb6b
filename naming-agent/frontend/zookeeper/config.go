package zookeeper

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config configures a Server. Durations are written as strings in YAML
// ("10s"). The defaults are ZooKeeper's own where it has one.
type Config struct {
	// Listen is where apps connect: loopback only unless configured, as
	// this server enforces no ACLs.
	Listen string `yaml:"listen"`
	// TickTime is ZooKeeper's tickTime: the granularity of session
	// expiry.
	TickTime time.Duration `yaml:"tick_time"`
	// MinSessionTimeout and MaxSessionTimeout bound the timeout a client
	// asks for, as ZooKeeper's (2 and 20 ticks by default).
	MinSessionTimeout time.Duration `yaml:"min_session_timeout"`
	MaxSessionTimeout time.Duration `yaml:"max_session_timeout"`
	// ConnectTimeout is how long a new connection has to send its
	// ConnectRequest (ZooKeeper's sessionlessCnxnTimeout).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxClientConns caps the connections from one IP address
	// (ZooKeeper's maxClientCnxns); 0: no cap.
	MaxClientConns int `yaml:"max_client_conns"`
	// MaxSessions caps the live sessions; a connection asking for one
	// more is closed. 0: no cap.
	MaxSessions int `yaml:"max_sessions"`
	// ServerID is the high byte of the session ids this server makes
	// (ZooKeeper's myid), 0 to 254.
	ServerID int `yaml:"server_id"`
	// OutgoingQueueBytes bounds what waits to be written to one client:
	// a client that does not read is disconnected past it.
	OutgoingQueueBytes int `yaml:"outgoing_queue_bytes"`
	// Passthrough is what the apps write that every host shares through
	// the registry (see Passthrough).
	Passthrough PassthroughConfig `yaml:"passthrough"`
}

// Default returns a ZooKeeper's defaults on 127.0.0.1:2181.
func Default() Config {
	return Config{
		Listen:             "127.0.0.1:2181",
		TickTime:           2 * time.Second,
		MinSessionTimeout:  4 * time.Second,
		MaxSessionTimeout:  40 * time.Second,
		ConnectTimeout:     10 * time.Second,
		MaxClientConns:     60,
		MaxSessions:        10000,
		OutgoingQueueBytes: 16 << 20,
		Passthrough:        DefaultPassthrough(),
	}
}

// Validate reports every invalid field, each error naming the field's
// YAML path ("tick_time: must be > 0").
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q: %v", c.Listen, err)
	}
	if c.TickTime <= 0 {
		bad("tick_time", "must be > 0, got %s", c.TickTime)
	}
	if c.MinSessionTimeout < time.Millisecond {
		bad("min_session_timeout", "must be at least 1ms, got %s", c.MinSessionTimeout)
	}
	if c.MaxSessionTimeout < c.MinSessionTimeout {
		bad("max_session_timeout", "must be at least min_session_timeout (%s), got %s", c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	if c.MaxSessionTimeout > time.Duration(1<<31-1)*time.Millisecond {
		bad("max_session_timeout", "must fit in 2^31-1 ms, got %s", c.MaxSessionTimeout)
	}
	if c.ConnectTimeout <= 0 {
		bad("connect_timeout", "must be > 0, got %s", c.ConnectTimeout)
	}
	if c.MaxClientConns < 0 {
		bad("max_client_conns", "must be >= 0, got %d", c.MaxClientConns)
	}
	if c.MaxSessions < 0 {
		bad("max_sessions", "must be >= 0, got %d", c.MaxSessions)
	}
	if c.ServerID < 0 || c.ServerID > 254 {
		bad("server_id", "must be 0 to 254, got %d", c.ServerID)
	}
	if c.OutgoingQueueBytes < 2*maxBuffer {
		bad("outgoing_queue_bytes", "must be at least %d (two frames of jute.maxbuffer), got %d", 2*maxBuffer, c.OutgoingQueueBytes)
	}
	for _, err := range c.Passthrough.errs() {
		errs = append(errs, fmt.Errorf("passthrough.%w", err))
	}
	return errors.Join(errs...)
}

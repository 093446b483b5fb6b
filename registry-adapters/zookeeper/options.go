package zookeeper

import (
	"net"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Option changes how New builds a Registry.
type Option func(*options)

type options struct {
	logger      *zap.Logger
	onMalformed registry.MalformedFunc
	dialer      zk.Dialer
	store       registry.SessionStore
}

func defaultOptions() options {
	return options{
		logger:      zap.NewNop(),
		onMalformed: func(string, string, error) {},
		dialer:      net.DialTimeout,
	}
}

// WithLogger sets the logger; the Registry names it "registry.zookeeper".
// The ZooKeeper client library's own messages go to it too. Default: no
// logging.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithMalformedFunc sets the function told about each provider node that
// cannot be read (see registry.MalformedFunc). It is called once per
// distinct node, from the goroutine that listed it, and must not block.
func WithMalformedFunc(f registry.MalformedFunc) Option {
	return func(o *options) {
		if f != nil {
			o.onMalformed = f
		}
	}
}

// WithDialer sets how the client opens its TCP connections to the
// servers. Default: net.DialTimeout. Tests use it to cut the network.
func WithDialer(d zk.Dialer) Option {
	return func(o *options) {
		if d != nil {
			o.dialer = d
		}
	}
}

// WithSessionStore makes the Registry keep its session (id and password)
// and the paths of its nodes in s, so that the next run of the process,
// given the same store, takes the session back, and with it the nodes
// this run leaves there (see registry.Resumer). A new session, every
// Register that writes a node (before it writes it) and every Deregister
// are saved; Close empties s. New, finding a session in s, asks the
// server for it instead of a new one and adopts the stored nodes the
// session still owns (Adopted); registering one of them again unchanged
// writes nothing. If the session has expired (the process was down for
// longer than session_timeout), it starts a new one as without a store.
func WithSessionStore(s registry.SessionStore) Option {
	return func(o *options) { o.store = s }
}

// zkLogger hands the ZooKeeper library's messages to zap. The library is
// told to log only trouble (failed connects, lost connections, expired
// sessions), so they go out at Info: they are expected during an outage,
// which the Registry reports once, at Warn, itself.
type zkLogger struct{ log *zap.SugaredLogger }

func (l zkLogger) Printf(format string, args ...any) { l.log.Infof(format, args...) }

package zookeeper

import (
	"time"

	"go.uber.org/zap"
)

// Option changes how New builds a Server.
type Option func(*options)

type options struct {
	logger   *zap.Logger
	now      func() time.Time
	store    SessionStore
	overlay  Overlay
	observer Observer

	containerCheck time.Duration
}

func defaultOptions() options {
	return options{logger: zap.NewNop(), now: time.Now, containerCheck: time.Minute}
}

// WithLogger sets the logger; the Server names it "frontend.zookeeper".
// Default: no logging.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock of session expiry and of node times. Expiry is
// checked every tick of real time against this clock, so a test can move
// it and wait for the expiry. Default: time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSessionStore makes sessions and their ephemeral nodes survive a
// restart (see SessionStore). Default: none; a restart ends every
// session.
func WithSessionStore(s SessionStore) Option { return func(o *options) { o.store = s } }

// WithOverlay serves some paths from o in place of the tree. Default:
// none.
func WithOverlay(ov Overlay) Option { return func(o *options) { o.overlay = ov } }

// WithObserver tells o about every committed change. Default: none.
func WithObserver(obs Observer) Option { return func(o *options) { o.observer = obs } }

// WithContainerCheck sets how often empty containers are deleted (those
// that had children and have none left at a check), ZooKeeper's
// znode.container.checkIntervalMs. Default: a minute, ZooKeeper's.
func WithContainerCheck(every time.Duration) Option {
	return func(o *options) {
		if every > 0 {
			o.containerCheck = every
		}
	}
}

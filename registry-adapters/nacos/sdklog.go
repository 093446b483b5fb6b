package nacos

import (
	"fmt"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// sdkLogger carries nacos-sdk-go's messages to a zap logger. The SDK has
// one logger for the whole process (common/logger), so New installs its
// Registry's sdkLogger there: the SDK's messages go to the logger of the
// Registry made last, while it is open. Close detaches it, after which it
// drops everything, so nothing is logged through a Registry's logger once
// it is closed (a zaptest logger would fail the test).
type sdkLogger struct {
	mu    sync.RWMutex
	log   *zap.SugaredLogger // nil once detached
	level zapcore.Level
}

var _ logger.Logger = (*sdkLogger)(nil)

func sdkLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug", "info", "warn", "error":
		return zapcore.ParseLevel(s)
	}
	return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
}

func newSDKLogger(log *zap.Logger, level zapcore.Level) *sdkLogger {
	return &sdkLogger{log: log.WithOptions(zap.AddCallerSkip(3)).Sugar(), level: level}
}

// install makes l the SDK's logger.
func (l *sdkLogger) install() { logger.SetLogger(l) }

// detach stops l for good and, if it is still the SDK's logger, replaces
// it with one that drops everything.
func (l *sdkLogger) detach() {
	l.mu.Lock()
	l.log = nil
	l.mu.Unlock()
	if logger.GetLogger() == logger.Logger(l) {
		logger.SetLogger(&sdkLogger{})
	}
}

func (l *sdkLogger) logf(lvl zapcore.Level, format string, args []any) {
	if lvl < l.level {
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.log == nil {
		return
	}
	if format == "" {
		l.log.Log(lvl, args...)
	} else {
		l.log.Logf(lvl, format, args...)
	}
}

func (l *sdkLogger) Info(args ...any)                  { l.logf(zapcore.InfoLevel, "", args) }
func (l *sdkLogger) Warn(args ...any)                  { l.logf(zapcore.WarnLevel, "", args) }
func (l *sdkLogger) Error(args ...any)                 { l.logf(zapcore.ErrorLevel, "", args) }
func (l *sdkLogger) Debug(args ...any)                 { l.logf(zapcore.DebugLevel, "", args) }
func (l *sdkLogger) Infof(format string, args ...any)  { l.logf(zapcore.InfoLevel, format, args) }
func (l *sdkLogger) Warnf(format string, args ...any)  { l.logf(zapcore.WarnLevel, format, args) }
func (l *sdkLogger) Errorf(format string, args ...any) { l.logf(zapcore.ErrorLevel, format, args) }
func (l *sdkLogger) Debugf(format string, args ...any) { l.logf(zapcore.DebugLevel, format, args) }

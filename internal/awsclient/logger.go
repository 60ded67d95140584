package awsclient

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger hands the SDK's own log lines (such as "failed to discard remaining HTTP response
// body") to slog, so they come out in the configured format with every other line, marked
// component=aws-sdk. Warnings stay warnings; everything else is debug.
type sdkLogger struct {
	log *slog.Logger
	ctx context.Context
}

var _ logging.ContextLogger = sdkLogger{}

// SDKLogger returns a logging.Logger for aws.Config.Logger that writes to log.
func SDKLogger(log *slog.Logger) logging.Logger {
	return sdkLogger{log: log.With("component", "aws-sdk")} // a nil ctx is slog's Background
}

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	if !l.log.Enabled(l.ctx, level) {
		return
	}
	l.log.Log(l.ctx, level, fmt.Sprintf(format, v...))
}

// WithContext keeps the call's context for the handler (trace ids and the like).
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	return sdkLogger{log: l.log, ctx: ctx}
}

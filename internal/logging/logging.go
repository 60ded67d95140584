// Package logging builds the process's *slog.Logger from the log section of the configuration:
// JSON for log collectors, text for people, or auto (text on a terminal, JSON otherwise).
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// New returns a logger writing to w in format ("json", "text" or "auto") at level ("debug",
// "info", "warn" or "error"). With "auto" the format is text when w is a terminal and JSON
// otherwise (a file, a pipe, a log collector). Unknown values are an error naming what is allowed;
// New never returns a nil logger with a nil error.
func New(format, level string, w io.Writer) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "auto":
		if IsTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: use auto, json or text", format)
	}
}

// ParseLevel maps "debug", "info", "warn" and "error" to their slog levels.
func ParseLevel(level string) (slog.Level, error) {
	switch level {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
}

// IsTerminal reports whether w is an *os.File open on a character device, which is how a
// terminal shows itself. Other character devices (/dev/null) count too, which only matters in
// that nobody reads what goes there. Anything else, including a file whose Stat fails, is not.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice != 0
}

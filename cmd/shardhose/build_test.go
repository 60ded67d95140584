package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
)

// attrsHandler records the attributes each logger derived from it carries (Logger.With).
type attrsHandler struct {
	mu    *sync.Mutex
	seen  *[][]slog.Attr
	attrs []slog.Attr
}

func (h attrsHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h attrsHandler) Handle(context.Context, slog.Record) error { return nil }
func (h attrsHandler) WithGroup(string) slog.Handler             { return h }
func (h attrsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	all := append(append([]slog.Attr(nil), h.attrs...), as...)
	h.mu.Lock()
	*h.seen = append(*h.seen, all)
	h.mu.Unlock()
	return attrsHandler{mu: h.mu, seen: h.seen, attrs: all}
}

// A sink names itself in its log lines once: the logger it is given does not carry its name
// already.
func TestSinkLoggerNamesTheSinkOnce(t *testing.T) {
	h := attrsHandler{mu: &sync.Mutex{}, seen: &[][]slog.Attr{}}
	cfg := config.Defaults()
	cfg.Sinks = []config.Sink{{Name: "archive", Type: "file", File: &config.FileSink{Path: filepath.Join(t.TempDir(), "out"), Format: "raw"}}}
	built, err := buildSinks(t.Context(), cfg, aws.Config{}, "", slog.New(h), clock.Real(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSinks(t.Context(), built)
	named := false
	for _, attrs := range *h.seen {
		n := 0
		for _, a := range attrs {
			if a.Key == "sink" {
				n++
			}
		}
		if n > 1 {
			t.Errorf("a logger carries the sink attribute %d times: %v", n, attrs)
		}
		named = named || n == 1
	}
	if !named {
		t.Error("no logger of the sink names it")
	}
}

package pipeline

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// A dead-letter destination that fails is logged as one outage and its recovery, naming the
// destination, not a warning per failed send.
func TestDeadLetterOutageIsLoggedOnceWithItsRecovery(t *testing.T) {
	var logs sinktest.LogBuffer
	dead := &memDLQ{failingStore: failingStore{failFirst: 5}}
	opts := Options{
		Policy:  Policy{MaximumRetryAttempts: 0, ParallelizationFactor: 1, Backoff: noWait()},
		Handler: &poisonHandler{}, Sinks: []sinks.Sink{&memSink{}}, DeadLetters: dead, Clock: clock.Real(),
		StoreRetry: retry.Policy{Initial: time.Nanosecond, Max: time.Nanosecond},
		Logger:     slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if !run(t, opts, records("poison")) {
		t.Fatal("batch never finished")
	}
	var outages []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if m["dependency"] != nil {
			outages = append(outages, m)
		}
	}
	if len(outages) != 2 || outages[0]["msg"] != outage.MsgFailing || outages[0]["dependency"] != "dead_letter" || outages[0]["resource"] != "mem" ||
		outages[1]["msg"] != outage.MsgRecovered || outages[1]["failures"] != 5.0 {
		t.Fatalf("outage lines %v: want one failing line for the dead-letter destination, then one recovery after 5 failures", outages)
	}
}

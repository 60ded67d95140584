package consumer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/outage"
)

// logCapture is a slog.Handler that keeps every record, for tests that assert what is logged.
type logCapture struct {
	mu    *sync.Mutex
	recs  *[]loggedLine
	attrs []slog.Attr
}

// loggedLine is one captured log record: its time, level, message and attributes as text.
type loggedLine struct {
	at    time.Time
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogCapture() *logCapture {
	return &logCapture{mu: &sync.Mutex{}, recs: &[]loggedLine{}}
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	l := loggedLine{at: r.Time, level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, l)
	return nil
}

func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCapture{mu: h.mu, recs: h.recs, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *logCapture) WithGroup(string) slog.Handler { return h }

// since returns the lines logged at or after t.
func (h *logCapture) since(t time.Time) []loggedLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []loggedLine
	for _, l := range *h.recs {
		if !l.at.Before(t) {
			out = append(out, l)
		}
	}
	return out
}

func (l loggedLine) String() string {
	var b strings.Builder
	b.WriteString(l.level.String() + " " + l.msg)
	for k, v := range l.attrs {
		b.WriteString(" " + k + "=" + v)
	}
	return b.String()
}

// TestFrozenLeaseTableIsLoggedPromptlyAtABoundedRateAndRecoveryOnce: a lone worker whose lease
// table stops answering (DynamoDB frozen) must log the first renewal failure with its error
// within two renewal intervals; give up its lease once the trust window ends saying that the
// lease table could not be reached (never that another worker holds it); log the ongoing outage
// at a bounded rate; and log the recovery once.
func TestFrozenLeaseTableIsLoggedPromptlyAtABoundedRateAndRecoveryOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogCapture()
		g := runGated(t, func(o *Options, _ *gatedRun) { o.Logger = slog.New(logs) })
		st, m, table, a := g.st, g.m, g.table, g.a

		frozen := time.Now()
		table.freeze()
		took := withinVirtual(t, 2*vRenewInterval, "the renewal failure logged", func() bool {
			for _, l := range logs.since(frozen) {
				if l.level == slog.LevelWarn && l.msg == outage.MsgFailing && l.attrs["dependency"] == "dynamodb" && l.attrs["error"] != "" {
					return true
				}
			}
			return false
		})
		t.Logf("first lease table failure logged %s after the table froze", took)

		const outageFor = 60 * time.Second
		time.Sleep(outageFor - took)
		lines := logs.since(frozen)
		gaveUp := false
		failures := 0
		for _, l := range lines {
			if strings.Contains(l.msg, "another worker") || strings.Contains(l.attrs["error"], "another worker") {
				t.Errorf("logged that another worker may hold the lease, though only the lease table was unreachable: %s", l)
			}
			if strings.Contains(l.msg, "lease table could not be reached") {
				gaveUp = true
			}
			if l.level >= slog.LevelWarn && (strings.Contains(l.msg, "failed") || strings.Contains(l.msg, "failing")) {
				failures++
			}
		}
		if !gaveUp {
			t.Errorf("no line says the lease was given up because the lease table could not be reached; logged:\n%s", joinLines(lines))
		}
		// The first failure, then at most one line per outage.DefaultEvery.
		if limit := 1 + int(outageFor/outage.DefaultEvery) + 1; failures > limit {
			t.Errorf("%d failure lines in a %s outage, want at most %d; logged:\n%s", failures, outageFor, limit, joinLines(lines))
		}
		t.Logf("%d failure lines in a %s outage:\n%s", failures, outageFor, joinLines(lines))

		thawed := time.Now()
		table.unfreeze()
		close(g.gate)
		withinVirtual(t, 3*vRenewInterval, "read again and delivered", func() bool {
			l, _ := m.get("shard-0")
			return l.Owner == "a" && l.Checkpoint.SequenceNumber == st.lastSeq("shard-0")
		})
		time.Sleep(10 * vRenewInterval)
		recovered := 0
		for _, l := range logs.since(thawed) {
			if l.msg == outage.MsgRecovered && l.attrs["dependency"] == "dynamodb" {
				recovered++
			}
		}
		if recovered != 1 {
			t.Errorf("recovery logged %d times, want once; logged:\n%s", recovered, joinLines(logs.since(thawed)))
		}
		a.stop(t)
	})
}

func joinLines(ls []loggedLine) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString("  " + l.String() + "\n")
	}
	return b.String()
}

// TestTrustEndedSaysWhy: a lease whose trust window ended because its writes failed while it
// was still trusted is reported as unreachable, with the last error; one nobody wrote to in
// time (a paused process, whose writes fail only after it resumes) as possibly held by another
// worker.
func TestTrustEndedSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemLeases(checkpoint.Lease{ShardID: "s", Owner: "a", Counter: 1})
		table := &downTable{LeaseTable: m.as("a")}
		table.setDown(true)

		h := &heldLease{lease: checkpoint.Lease{ShardID: "s", Owner: "a", Counter: 1}, renewedAt: time.Now()}
		time.Sleep(vRenewInterval)
		if _, err := h.renew(t.Context(), table); err == nil {
			t.Fatal("renewal against a table that is down succeeded")
		}
		time.Sleep(vLeaseDuration)
		err := h.trusted(vLeaseDuration)
		if !tableUnreachable(err) || !errors.Is(err, errLeaseGone) || !strings.Contains(err.Error(), errUnreachable.Error()) ||
			strings.Contains(err.Error(), "another worker") {
			t.Errorf("writes failed within the trust window: got %v, want the lease table unreachable with its last error", err)
		}

		paused := &heldLease{lease: checkpoint.Lease{ShardID: "s", Owner: "a", Counter: 1}, renewedAt: time.Now()}
		time.Sleep(vLeaseDuration)
		if _, err := paused.renew(t.Context(), table); err == nil {
			t.Fatal("renewal against a table that is down succeeded")
		}
		err = paused.trusted(vLeaseDuration)
		if tableUnreachable(err) || !errors.Is(err, errLeaseGone) || !strings.Contains(err.Error(), "another worker may hold it") {
			t.Errorf("no write failed within the trust window: got %v, want another worker may hold it", err)
		}
	})
}

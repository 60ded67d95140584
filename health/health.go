// Package health decides whether the process is alive (/healthz) and ready (/readyz) from what the
// consumer reports through hooks, so an orchestrator (ECS, Kubernetes, systemd through
// `shardhose healthcheck`) can restart a wedged process and route nothing to one that is starting
// or draining.
//
// Alive means the lease loop, and every shard reader that is not waiting for room in its sinks,
// made progress within the liveness timeout. A reader waiting for room is the backpressure of a
// slow or failing destination, not a wedge: leases.stall_timeout restarts such a shard, and a
// restart of the process would not bring the destination back.
//
// Ready means the start-up checks passed, the lease loop is running (passed within the liveness
// timeout) and the process is not draining.
package health

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
)

// Monitor implements the hooks it needs (hooks.LeasePass, hooks.LeaseChanged, hooks.ShardProgress,
// hooks.ShardWaiting) and answers Live and Ready. It is safe for concurrent use.
type Monitor struct {
	clock       clock.Clock
	timeout     time.Duration
	readerSlack time.Duration

	mu        sync.Mutex
	started   bool
	draining  bool
	lastPass  time.Time
	shards    map[string]*shard
	startedAt time.Time
}

type shard struct {
	last    time.Time
	waiting bool
}

var (
	_ hooks.LeasePass     = (*Monitor)(nil)
	_ hooks.LeaseChanged  = (*Monitor)(nil)
	_ hooks.ShardProgress = (*Monitor)(nil)
	_ hooks.ShardWaiting  = (*Monitor)(nil)
	_ hooks.ShardEnded    = (*Monitor)(nil)
)

// New returns a Monitor: the lease loop may go timeout without a pass, a shard reader timeout plus
// readerSlack (twice the poll interval it sleeps between reads) without progress.
func New(c clock.Clock, timeout, readerSlack time.Duration) *Monitor {
	if c == nil {
		c = clock.Real()
	}
	return &Monitor{clock: c, timeout: timeout, readerSlack: readerSlack, shards: map[string]*shard{}}
}

// Started records that the start-up checks passed and the consumer is starting.
func (m *Monitor) Started() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = true
	m.startedAt = m.clock.Now()
}

// Draining records that a graceful stop began: the process is no longer ready.
func (m *Monitor) Draining() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.draining = true
}

// OnLeasePass implements hooks.LeasePass.
func (m *Monitor) OnLeasePass() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastPass = m.clock.Now()
}

// OnLeaseTaken implements hooks.LeaseChanged: the shard's reader is watched from now on.
func (m *Monitor) OnLeaseTaken(shardID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shards[shardID] = &shard{last: m.clock.Now()}
}

// OnLeaseLost implements hooks.LeaseChanged: the shard is no longer read here.
func (m *Monitor) OnLeaseLost(shardID, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.shards, shardID)
}

// OnShardEnd implements hooks.ShardEnded: the shard was read to its end and is no longer read.
func (m *Monitor) OnShardEnd(_, shardID string) { m.OnLeaseLost(shardID, "shard end") }

// OnShardProgress implements hooks.ShardProgress.
func (m *Monitor) OnShardProgress(_, shardID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.shards[shardID]; ok {
		s.last = m.clock.Now()
	}
}

// OnShardWaiting implements hooks.ShardWaiting. The end of a wait counts as progress.
func (m *Monitor) OnShardWaiting(_, shardID string, waiting bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.shards[shardID]; ok {
		s.waiting = waiting
		s.last = m.clock.Now()
	}
}

// Live returns nil when the process is alive, else the problems found, one per wedged part.
func (m *Monitor) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var problems []string
	if p := m.leaseLoopProblem(now); p != "" {
		problems = append(problems, p)
	}
	if m.draining {
		return problems // readers are being stopped on purpose
	}
	ids := make([]string, 0, len(m.shards))
	for id := range m.shards {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := m.shards[id]
		if idle := now.Sub(s.last); !s.waiting && idle > m.timeout+m.readerSlack {
			problems = append(problems, fmt.Sprintf("shard %s: its reader made no progress for %s (limit %s)", id, idle.Round(time.Second), m.timeout+m.readerSlack))
		}
	}
	return problems
}

// leaseLoopProblem describes a lease loop that has not passed within the timeout ("" if none).
// Before the start-up checks pass there is no loop to judge.
func (m *Monitor) leaseLoopProblem(now time.Time) string {
	if !m.started {
		return ""
	}
	last := m.lastPass
	if last.IsZero() {
		last = m.startedAt
	}
	if idle := now.Sub(last); idle > m.timeout {
		if m.lastPass.IsZero() {
			return fmt.Sprintf("lease loop: no pass in the %s since start-up (limit %s)", idle.Round(time.Second), m.timeout)
		}
		return fmt.Sprintf("lease loop: no pass for %s (limit %s)", idle.Round(time.Second), m.timeout)
	}
	return ""
}

// Ready returns nil when the process is ready, else why not.
func (m *Monitor) Ready() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.started:
		return []string{"starting: the start-up checks have not passed yet"}
	case m.draining:
		return []string{"draining: stopping after a signal"}
	case m.lastPass.IsZero():
		return []string{"starting: the lease loop has not completed a pass yet"}
	}
	if p := m.leaseLoopProblem(m.clock.Now()); p != "" {
		return []string{p}
	}
	return nil
}

// Register adds /healthz and /readyz to mux: 200 "ok", or 503 with one problem per line.
func (m *Monitor) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { answer(w, m.Live()) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { answer(w, m.Ready()) })
}

func answer(w http.ResponseWriter, problems []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) == 0 {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, p := range problems {
		_, _ = fmt.Fprintln(w, p)
	}
}

// Package sdnotify tells systemd how the daemon is doing, for units of Type=notify: READY=1 once
// the start-up checks passed, STATUS= with the shards held and how far behind they are after each
// lease pass, WATCHDOG=1 after each lease pass when the unit sets WatchdogSec, and STOPPING=1 when
// the drain starts. It uses go-systemd's daemon package, which writes one datagram to the socket
// named by $NOTIFY_SOCKET; without that variable every method does nothing.
//
// WATCHDOG=1 is sent only from the lease loop's own pass (hooks.LeasePass), never from a timer of
// its own: if the loop wedges, systemd stops hearing from it and restarts the unit.
package sdnotify

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier is a hooks adapter that reports to systemd. It implements hooks.LeasePass,
// hooks.LeaseChanged, hooks.RecordsRead and hooks.IteratorAge; its methods are safe for
// concurrent use and return after one datagram at most. A failed send is logged once and
// otherwise ignored: systemd's view is advisory, the daemon's work does not depend on it.
type Notifier struct {
	send     func(state string) error
	watchdog time.Duration
	log      *slog.Logger
	held     func() []string // the shards read now; set by Track before the loop starts

	mu       sync.Mutex
	behind   map[string]int64         // per shard: MillisBehindLatest of its last read
	age      map[string]time.Duration // per shard: iterator age of its last batch
	stopping bool
	warned   bool
}

// New returns a Notifier for this process: enabled when $NOTIFY_SOCKET is set, with a watchdog
// when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is this process). renewInterval is the
// lease loop's period: a watchdog shorter than two of them would restart a healthy unit, which
// is reported as an error.
func New(log *slog.Logger, renewInterval time.Duration) (*Notifier, error) {
	n := &Notifier{log: log, behind: map[string]int64{}, age: map[string]time.Duration{}}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return n, nil
	}
	n.send = func(state string) error {
		_, err := daemon.SdNotify(false, state)
		return err
	}
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return nil, fmt.Errorf("systemd watchdog: %w", err)
	}
	if wd > 0 && wd < 2*renewInterval {
		return nil, fmt.Errorf("systemd WatchdogSec=%s is shorter than twice leases.renew_interval (%s): a healthy unit would be restarted; raise WatchdogSec or lower renew_interval", wd, renewInterval)
	}
	n.watchdog = wd
	return n, nil
}

// NewWithSender returns a Notifier that hands each state to send, with the given watchdog
// interval (0: none); for tests and for embedding.
func NewWithSender(log *slog.Logger, watchdog time.Duration, send func(state string) error) *Notifier {
	return &Notifier{send: send, watchdog: watchdog, log: log, behind: map[string]int64{}, age: map[string]time.Duration{}}
}

// Track gives the notifier the shards this worker reads (consumer.Consumer.Held), for the
// status line. Call it before the lease loop starts.
func (n *Notifier) Track(held func() []string) { n.held = held }

// Enabled reports whether the notifier talks to systemd.
func (n *Notifier) Enabled() bool { return n.send != nil }

// Watchdog is the watchdog interval systemd asked for; 0 when there is none.
func (n *Notifier) Watchdog() time.Duration { return n.watchdog }

// Ready says start-up is complete: the stream, the lease table and every destination were checked.
func (n *Notifier) Ready() {
	n.notify("READY=1\nSTATUS=started; taking leases")
}

// Stopping says the drain has started (SIGTERM): systemd shows the unit as deactivating and
// waits up to TimeoutStopSec.
func (n *Notifier) Stopping(drainTimeout time.Duration) {
	n.mu.Lock()
	n.stopping = true
	held := len(n.behind)
	n.mu.Unlock()
	n.notify(fmt.Sprintf("STOPPING=1\nSTATUS=draining %d shard(s): delivering, checkpointing and releasing leases within %s", held, drainTimeout))
}

// OnLeasePass reports the shards held and their lag, and pets the watchdog: the lease loop has
// just made progress. It is called from the loop itself (hooks.LeasePass), never from a timer,
// so a wedged loop stops the watchdog pings and systemd restarts the unit.
func (n *Notifier) OnLeasePass() {
	if n.send == nil {
		return
	}
	var held []string
	if n.held != nil {
		held = n.held()
	}
	n.mu.Lock()
	keep := make(map[string]bool, len(held))
	for _, id := range held {
		keep[id] = true
	}
	for id := range n.behind {
		if !keep[id] {
			delete(n.behind, id)
		}
	}
	for id := range n.age {
		if !keep[id] {
			delete(n.age, id)
		}
	}
	status := n.statusLocked(len(held))
	n.mu.Unlock()
	msg := "STATUS=" + status
	if n.watchdog > 0 {
		msg = "WATCHDOG=1\n" + msg
	}
	n.notify(msg)
}

// statusLocked is the one line systemctl status shows.
func (n *Notifier) statusLocked(held int) string {
	var maxBehind int64
	for _, ms := range n.behind {
		maxBehind = max(maxBehind, ms)
	}
	var maxAge time.Duration
	for _, a := range n.age {
		maxAge = max(maxAge, a)
	}
	state := "reading"
	if n.stopping {
		state = "draining"
	}
	return fmt.Sprintf("%s %d shard(s); max %d ms behind latest; max iterator age %s",
		state, held, maxBehind, maxAge.Round(time.Millisecond))
}

// OnRecordsRead keeps the shard's MillisBehindLatest for the status line.
func (n *Notifier) OnRecordsRead(_, shardID string, _, _ int, millisBehindLatest int64) {
	n.mu.Lock()
	n.behind[shardID] = millisBehindLatest
	n.mu.Unlock()
}

// OnIteratorAge keeps the age of the shard's newest record handed on for the status line.
func (n *Notifier) OnIteratorAge(_, shardID string, age time.Duration) {
	n.mu.Lock()
	n.age[shardID] = age
	n.mu.Unlock()
}

// OnLeaseTaken starts the shard's figures at zero.
func (n *Notifier) OnLeaseTaken(shardID string) {
	n.mu.Lock()
	n.behind[shardID] = 0
	n.mu.Unlock()
}

// OnLeaseLost forgets the shard.
func (n *Notifier) OnLeaseLost(shardID, _ string) {
	n.mu.Lock()
	delete(n.behind, shardID)
	delete(n.age, shardID)
	n.mu.Unlock()
}

func (n *Notifier) notify(state string) {
	if n.send == nil {
		return
	}
	if err := n.send(state); err != nil {
		n.mu.Lock()
		first := !n.warned
		n.warned = true
		n.mu.Unlock()
		if first && n.log != nil {
			n.log.Warn("cannot notify systemd; carrying on", "error", err, "state", firstLine(state))
		}
	}
}

func firstLine(s string) string {
	lines := strings.SplitN(s, "\n", 2)
	return lines[0]
}

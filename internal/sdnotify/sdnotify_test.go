package sdnotify

import (
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type sent struct {
	mu     sync.Mutex
	states []string
}

func (s *sent) send(state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, state)
	return nil
}

func (s *sent) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.states)
}

func TestWatchdogOnlyAfterALeasePass(t *testing.T) {
	var s sent
	n := NewWithSender(nil, 10*time.Second, s.send)
	n.Ready()
	n.OnLeaseTaken("shard-0")
	n.OnRecordsRead("orders", "shard-0", 10, 100, 1500)
	n.OnIteratorAge("orders", "shard-0", 2*time.Second)
	// Reads and lease changes alone do not pet the watchdog: only the loop's pass does.
	for _, st := range s.all() {
		if strings.Contains(st, "WATCHDOG=1") {
			t.Fatalf("watchdog sent before any lease pass: %q", st)
		}
	}
	n.Track(func() []string { return []string{"shard-0"} })
	n.OnLeasePass()
	got := s.all()
	if len(got) != 2 || !strings.HasPrefix(got[0], "READY=1\n") {
		t.Fatalf("states = %q, want READY then one pass", got)
	}
	want := "WATCHDOG=1\nSTATUS=reading 1 shard(s); max 1500 ms behind latest; max iterator age 2s"
	if got[1] != want {
		t.Fatalf("pass sent %q, want %q", got[1], want)
	}
}

func TestStatusForgetsShardsNoLongerHeld(t *testing.T) {
	var s sent
	n := NewWithSender(nil, 0, s.send)
	n.OnRecordsRead("orders", "shard-0", 1, 1, 9000)
	n.OnRecordsRead("orders", "shard-1", 1, 1, 40)
	n.Track(func() []string { return []string{"shard-1"} })
	n.OnLeasePass() // shard-0 reached its end and is no longer held
	got := s.all()
	want := "STATUS=reading 1 shard(s); max 40 ms behind latest; max iterator age 0s"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("states = %q, want [%q] (no watchdog configured)", got, want)
	}
	n.Stopping(30 * time.Second)
	got = s.all()
	if !strings.HasPrefix(got[1], "STOPPING=1\nSTATUS=draining 1 shard(s)") {
		t.Fatalf("stopping sent %q", got[1])
	}
}

func TestSendFailureIsReportedNotFatal(t *testing.T) {
	calls := 0
	n := NewWithSender(nil, 0, func(string) error { calls++; return errors.New("socket gone") })
	n.Ready()
	n.OnLeasePass()
	if calls != 2 {
		t.Fatalf("send called %d times, want 2", calls)
	}
}

// listen makes a unixgram socket standing in for systemd and points $NOTIFY_SOCKET at it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func TestNewTalksToNotifySocket(t *testing.T) {
	conn := listen(t)
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", "")
	n, err := New(nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Enabled() || n.Watchdog() != 4*time.Second {
		t.Fatalf("enabled %v watchdog %s, want true 4s", n.Enabled(), n.Watchdog())
	}
	n.Ready()
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	k, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:k]); !strings.HasPrefix(got, "READY=1\n") {
		t.Fatalf("datagram %q, want READY=1 first", got)
	}
}

func TestWatchdogShorterThanTwoRenewalsIsRefused(t *testing.T) {
	listen(t)
	t.Setenv("WATCHDOG_USEC", "5000000")
	_, err := New(nil, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "WatchdogSec=5s is shorter than twice leases.renew_interval (3s)") {
		t.Fatalf("err = %v", err)
	}
}

func TestDisabledWithoutNotifySocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := New(nil, time.Second)
	if err != nil || n.Enabled() {
		t.Fatalf("enabled %v err %v, want disabled", n.Enabled(), err)
	}
	n.Ready() // must not panic or block
	n.OnLeasePass()
	n.Stopping(time.Second)
}

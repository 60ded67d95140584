package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/testenv"
)

// notifySocket is a unixgram socket standing in for systemd's notify socket: it keeps every
// assignment (READY=1, STATUS=..., ...) received, in order, with the time it was read.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	got  []string
	at   []time.Time // at[i]: when got[i] was read from the socket (after it was sent)
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// A short directory: a socket path is limited to 108 bytes.
	dir, err := makeShortTempDir(t)
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: filepath.Join(dir, "notify")}
	n.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.conn.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			k, err := n.conn.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			n.mu.Lock()
			for _, f := range strings.Split(string(buf[:k]), "\n") {
				if f != "" {
					n.got = append(n.got, f)
					n.at = append(n.at, now)
				}
			}
			n.mu.Unlock()
		}
	}()
	return n
}

func makeShortTempDir(t *testing.T) (string, error) {
	dir, err := os.MkdirTemp("/tmp", "sdn-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir, nil
}

func (n *notifySocket) received() []string {
	fields, _ := n.receivedAt()
	return fields
}

// receivedAt is received with the time each assignment was read.
func (n *notifySocket) receivedAt() ([]string, []time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.got), slices.Clone(n.at)
}

// index returns the position of the first assignment with prefix at or after from, or -1.
func index(fields []string, from int, prefix string) int {
	for i := from; i < len(fields); i++ {
		if strings.HasPrefix(fields[i], prefix) {
			return i
		}
	}
	return -1
}

// TestSystemdNotifyReadyStatusWatchdogStopping runs the daemon as systemd would run a Type=notify
// unit with WatchdogSec: the notify socket sees READY=1 after the start-up checks, then STATUS
// lines with the shards held and their lag together with WATCHDOG=1 from each lease pass, then
// STOPPING=1 when SIGTERM starts the drain; the daemon then exits 0.
func TestSystemdNotifyReadyStatusWatchdogStopping(t *testing.T) {
	s := newE2EStack(t, 2)
	testenv.PutRecords(t, s.kin, s.stream, makeRecords(0, 200))
	sock := newNotifySocket(t)
	d := startDaemonEnv(t, s.config(t, 1, 1, ""), "worker-sd", []string{
		"NOTIFY_SOCKET=" + sock.path, "WATCHDOG_USEC=5000000", "WATCHDOG_PID=",
	})
	waitFor(t, 60*time.Second, "READY, then a watchdog ping with a status of both shards", func() (bool, string) {
		got := sock.received()
		ready := index(got, 0, "READY=1")
		if ready < 0 {
			return false, strings.Join(got, " | ")
		}
		for i := ready; ; i++ {
			w := index(got, i, "WATCHDOG=1")
			if w < 0 || w+1 >= len(got) {
				return false, strings.Join(got, " | ")
			}
			if strings.HasPrefix(got[w+1], "STATUS=reading 2 shard(s); max ") {
				return true, ""
			}
			i = w
		}
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	got := sock.received()
	ready, watchdog, stopping := index(got, 0, "READY=1"), index(got, 0, "WATCHDOG=1"), index(got, 0, "STOPPING=1")
	if !(ready >= 0 && ready < watchdog && watchdog < stopping) {
		t.Fatalf("want READY, WATCHDOG, STOPPING in that order; got %q", got)
	}
	if index(got, ready+1, "READY=1") >= 0 {
		t.Fatalf("READY=1 sent twice: %q", got)
	}
	if !strings.HasPrefix(got[stopping+1], "STATUS=draining") {
		t.Errorf("STOPPING=1 not followed by a draining status: %q", got[stopping:])
	}
	t.Logf("notify socket received %d assignments; first: %q", len(got), got[:min(len(got), 4)])
}

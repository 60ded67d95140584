package health

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

func newMonitor() (*Monitor, *clock.Fake) {
	c := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return New(c, time.Minute, 10*time.Second), c
}

func TestReadyFollowsStartUpLeaseLoopAndDrain(t *testing.T) {
	m, c := newMonitor()
	if r := m.Ready(); len(r) == 0 || !strings.Contains(r[0], "start-up checks") {
		t.Fatalf("before start-up: Ready = %v, want not ready for the start-up checks", r)
	}
	m.Started()
	if r := m.Ready(); len(r) == 0 || !strings.Contains(r[0], "lease loop has not completed") {
		t.Fatalf("before the first pass: Ready = %v", r)
	}
	m.OnLeasePass()
	if r := m.Ready(); r != nil {
		t.Fatalf("after a pass: Ready = %v, want ready", r)
	}
	c.Advance(61 * time.Second)
	if r := m.Ready(); len(r) == 0 || !strings.Contains(r[0], "no pass for 1m1s") {
		t.Fatalf("a stopped lease loop: Ready = %v", r)
	}
	m.OnLeasePass()
	m.Draining()
	if r := m.Ready(); len(r) == 0 || !strings.Contains(r[0], "draining") {
		t.Fatalf("draining: Ready = %v", r)
	}
}

func TestLiveTurnsRedOnAWedgedLeaseLoop(t *testing.T) {
	m, c := newMonitor()
	if l := m.Live(); l != nil {
		t.Fatalf("before start-up: Live = %v, want alive (nothing to judge yet)", l)
	}
	m.Started()
	c.Advance(59 * time.Second)
	if l := m.Live(); l != nil {
		t.Fatalf("59s into start-up: Live = %v", l)
	}
	c.Advance(2 * time.Second)
	if l := m.Live(); len(l) != 1 || !strings.Contains(l[0], "no pass in the 1m1s since start-up") {
		t.Fatalf("no first pass after 61s: Live = %v", l)
	}
	m.OnLeasePass()
	if l := m.Live(); l != nil {
		t.Fatalf("after a pass: Live = %v", l)
	}
}

func TestLiveWatchesEveryReaderButNotOneWaitingForRoom(t *testing.T) {
	m, c := newMonitor()
	m.Started()
	m.OnLeaseTaken("shard-1")
	m.OnLeaseTaken("shard-2")
	for range 8 { // 80 s: both readers turn, the lease loop passes
		c.Advance(10 * time.Second)
		m.OnLeasePass()
		m.OnShardProgress("s", "shard-1")
		m.OnShardProgress("s", "shard-2")
	}
	// shard-1 waits for its sinks (backpressure); shard-2's reader wedges.
	m.OnShardWaiting("s", "shard-1", true)
	for range 7 {
		c.Advance(10 * time.Second)
		m.OnLeasePass()
	}
	if l := m.Live(); l != nil {
		t.Fatalf("shard-2 idle exactly the limit (70s): Live = %v, want alive", l)
	}
	c.Advance(time.Second)
	m.OnLeasePass()
	l := m.Live()
	if len(l) != 1 || !strings.Contains(l[0], "shard shard-2") {
		t.Fatalf("shard-2 wedged for 71s, shard-1 waiting: Live = %v, want only shard-2", l)
	}
	m.OnLeaseLost("shard-2", "lease lost")
	if l := m.Live(); l != nil {
		t.Fatalf("after shard-2 left: Live = %v", l)
	}
	m.OnShardWaiting("s", "shard-1", false)
	c.Advance(71 * time.Second)
	m.OnLeasePass()
	if l := m.Live(); len(l) != 1 || !strings.Contains(l[0], "shard shard-1") {
		t.Fatalf("shard-1 no longer waiting and idle 71s: Live = %v", l)
	}
	m.Draining()
	if l := m.Live(); l != nil {
		t.Fatalf("draining (readers stopped on purpose): Live = %v", l)
	}
}

func TestEndpointsAnswer200Or503WithTheProblems(t *testing.T) {
	m, _ := newMonitor()
	mux := http.NewServeMux()
	m.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "start-up checks") {
		t.Fatalf("/readyz before start-up: %d %q", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	m.Started()
	m.OnLeasePass()
	if code, body := get("/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz when ready: %d %q", code, body)
	}
}

// A shard read to its end (after a reshard) is no longer watched: its reader stopped on purpose.
func TestAnEndedShardIsNotWatched(t *testing.T) {
	m, c := newMonitor()
	m.Started()
	m.OnLeaseTaken("parent")
	m.OnShardEnd("s", "parent")
	c.Advance(2 * time.Minute)
	m.OnLeasePass()
	if l := m.Live(); l != nil {
		t.Fatalf("Live = %v, want alive: the ended shard is not read any more", l)
	}
}

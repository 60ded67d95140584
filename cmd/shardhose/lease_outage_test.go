package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/testenv"
)

// TestLeaseTableFrozenIsLoggedWithinSecondsAndRecoveryOnce freezes DynamoDB (SIGSTOP of a
// private dynalite) under a running worker while records flow. The worker must log the failed
// renewal within 10 s of the freeze, say that it gives up its leases because the lease table
// could not be reached (never that another worker holds them), log no more than the bounded
// repeats, and once DynamoDB is back log the recovery once and take its leases again.
func TestLeaseTableFrozenIsLoggedWithinSecondsAndRecoveryOnce(t *testing.T) {
	s := newE2EStack(t, 2)
	dyn := testenv.StartDynalite(t)
	s.env.DynamoDB = dyn.Endpoint
	s.ddb = testenv.DynamoDBClient(t, s.env)
	cfg := s.fleetConfig(t, fleetOptions{})
	s.startProducer(t, 4, 100*time.Millisecond)
	d := startWorker(t, cfg, "frozen-a")
	s.waitBalanced(t, 30*time.Second, []string{"frozen-a"}, []int{2})

	dyn.Freeze()
	frozen := time.Now()
	thawed := false
	defer func() {
		if !thawed {
			dyn.Thaw()
		}
	}()
	waitFor(t, 10*time.Second, "the lease table's outage logged", func() (bool, string) {
		return d.outageCount(t, "dynamodb", outage.MsgFailing) > 0, "not yet"
	})
	first := d.outageLines(t, "dynamodb")[0]
	if first["level"] != "WARN" || first["resource"] != s.table || first["operation"] == nil || first["error"] == nil {
		t.Errorf("first outage line %v: want a WARN naming the table %s, the operation and the error", first, s.table)
	}
	t.Logf("lease table failure (%v) logged %s after DynamoDB froze", first["operation"], secs(time.Since(frozen)))
	waitFor(t, 10*time.Second, "a lease given up as unreachable", func() (bool, string) {
		for _, l := range d.lines() {
			if strings.HasPrefix(l.Msg, "giving up the lease: the lease table could not be reached") {
				return true, ""
			}
		}
		return false, "no 'giving up the lease' line"
	})
	const outageFor = 15 * time.Second
	time.Sleep(outageFor - time.Since(frozen))
	failures := d.outageCount(t, "dynamodb", outage.MsgFailing) + d.outageCount(t, "dynamodb", outage.MsgStillFailing)
	// One outage of 15 s: its first failure, and no repeat before 30 s.
	if failures > 1 {
		t.Errorf("%d lease-table failure lines in a %s outage, want 1 (repeats at most every 30s)", failures, outageFor)
	}
	for _, l := range d.lines() {
		if strings.Contains(l.Msg, "another worker") {
			t.Errorf("logged %q for shard %s while only DynamoDB was frozen", l.Msg, l.Shard)
		}
	}

	dyn.Thaw()
	thawed = true
	back := time.Now()
	waitFor(t, 15*time.Second, "recovery logged", func() (bool, string) {
		return d.outageCount(t, "dynamodb", outage.MsgRecovered) > 0, "not yet"
	})
	t.Logf("recovery logged %s after DynamoDB resumed", secs(time.Since(back)))
	s.waitBalanced(t, 15*time.Second, []string{"frozen-a"}, []int{2})
	time.Sleep(3 * fleetRenewInterval)
	if n := d.outageCount(t, "dynamodb", outage.MsgRecovered); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	d.stop(t, "frozen-a")
}

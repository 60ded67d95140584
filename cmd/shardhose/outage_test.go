package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

// withPrivateMoto points the stack's S3 at a moto server of the test's own, which the test can
// stop and start without disturbing other tests.
func (s *e2eStack) withPrivateMoto(t *testing.T) *testenv.Moto {
	t.Helper()
	m := testenv.StartMoto(t)
	s.env.Moto = m.Endpoint
	s.s3 = testenv.S3Client(t, s.env)
	testenv.CreateBucket(t, s.s3, s.bucket)
	return m
}

// logCount counts the daemon's log lines whose message is msg.
func (d *daemon) logCount(msg string) int {
	return strings.Count(d.logs.String(), `"msg":"`+msg+`"`)
}

// TestS3OutagePausesWithoutLoss: S3 goes down while records flow. The daemon keeps running, its
// checkpoint does not pass an undelivered record, reading stops at the in-flight cap, and when S3
// comes back (empty: the bucket is made again) every record written during the outage arrives.
func TestS3OutagePausesWithoutLoss(t *testing.T) {
	s := newE2EStack(t, 1)
	m := s.withPrivateMoto(t)
	cfg := s.config(t, 1, 1, "batching: {batch_size: 100, max_in_flight_records: 1000}\n")
	rewrite(t, cfg, "retry: {initial_backoff: 200ms, max_backoff: 2s}", "retry: {initial_backoff: 200ms, max_backoff: 500ms}\n      max_uploads: 2")

	before := makeRecords(0, 500)
	puts := testenv.PutRecords(t, s.kin, s.stream, before)
	lastBefore := puts[len(puts)-1].SequenceNumber
	d := startDaemon(t, cfg, "worker-a")
	waitFor(t, 60*time.Second, "the first records delivered and checkpointed", func() (bool, string) {
		l := s.leases(t)[puts[0].ShardID]
		return l.Checkpoint.SequenceNumber == lastBefore, "at " + l.Checkpoint.String()
	})

	m.Stop()
	handedBefore := d.handedToSinks()
	during := makeRecords(500, 3000)
	testenv.PutRecords(t, s.kin, s.stream, during)
	waitFor(t, 60*time.Second, "several failed PUTs while S3 is down", func() (bool, string) {
		// The whole time, the checkpoint stays where delivery stopped.
		if cp := s.leases(t)[puts[0].ShardID].Checkpoint; record.CompareSequenceNumbers(cp.SequenceNumber, lastBefore) != 0 {
			t.Fatalf("checkpoint moved to %s while S3 was down (last delivered %s)", cp.String(), lastBefore)
		}
		n := d.logCount("s3 put object failed; retrying")
		return n >= 6, itoa(n) + " failed PUTs"
	})
	// Backpressure: with 1,000 records in flight the reader stopped, far short of the 3,000 waiting.
	readDuring := d.handedToSinks() - handedBefore
	if readDuring > 1000 {
		t.Fatalf("%d records read during the outage, above the in-flight cap of 1,000", readDuring)
	}
	select {
	case <-d.exited:
		t.Fatalf("the daemon exited during the outage (code %d)", d.code)
	default:
	}

	m.Start() // an empty moto: make the bucket again
	testenv.CreateBucket(t, s.s3, s.bucket)
	waitFor(t, 90*time.Second, "every record written during the outage in S3", func() (bool, string) {
		counts, _ := s.delivered(t)
		n, _ := missing(during, counts)
		return n == 0, itoa(n) + " missing"
	})
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d after recovery", code)
	}
	t.Logf("outage: reading stopped after %d of %d records (cap 1,000 in flight); %d failed PUTs retried; all arrived after recovery", readDuring, len(during), d.logCount("s3 put object failed; retrying"))
}

package main

import (
	"strings"
	"syscall"
	"testing"

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

// logLineCount is the number of lines the daemon has written so far: the index (logLine.index)
// the next line will have.
func (d *daemon) logLineCount() int { return strings.Count(d.logs.String(), "\n") }

// handedPerReading counts the records handed on to the sinks from shard after log line from,
// once per reading of the shard: a new reading starts each time the worker takes the shard's
// lease. A worker starved for a lease duration (a loaded machine) loses its lease and takes it
// again, reading from the checkpoint with a tracker, and so an in-flight cap, of its own.
func (d *daemon) handedPerReading(shard string, from int) []int {
	counts := []int{0}
	for _, l := range d.lines() {
		if l.index < from || l.Shard != shard {
			continue
		}
		switch l.Msg {
		case "took lease; reading shard":
			counts = append(counts, 0)
		case "records handed on":
			counts[len(counts)-1] += l.Records
		}
	}
	return counts
}

// TestS3OutagePausesWithoutLoss: S3 goes down while records flow. The daemon keeps running, its
// checkpoint does not pass an undelivered record, reading stops at the in-flight cap, and when S3
// comes back (empty: the bucket is made again) every record written during the outage arrives.
//
// Nothing here depends on the machine's speed: each wait is for an outcome, with a deadline of
// many lease durations. A worker starved past its lease duration (a loaded machine) gives the
// lease up and takes it again, reading again from the checkpoint; the cap then holds for each
// reading, and the test still requires every record to arrive.
func TestS3OutagePausesWithoutLoss(t *testing.T) {
	const inFlightCap = 1000
	settle := 30 * e2eLeaseDuration
	s := newE2EStack(t, 1)
	m := s.withPrivateMoto(t)
	cfg := s.config(t, 1, 1, "batching: {batch_size: 100, max_in_flight_records: "+itoa(inFlightCap)+"}\n")
	rewrite(t, cfg, "retry: {initial_backoff: 200ms, max_backoff: 2s}", "retry: {initial_backoff: 200ms, max_backoff: 500ms}\n      max_uploads: 2")

	before := makeRecords(0, 500)
	puts := testenv.PutRecords(t, s.kin, s.stream, before)
	shard, lastBefore := puts[0].ShardID, puts[len(puts)-1].SequenceNumber
	d := startDaemon(t, cfg, "worker-a")
	waitFor(t, settle, "the first records delivered and checkpointed", func() (bool, string) {
		l := s.leases(t)[shard]
		return l.Checkpoint.SequenceNumber == lastBefore, "at " + l.Checkpoint.String()
	})

	m.Stop()
	outageFrom := d.logLineCount()
	during := makeRecords(500, 3000)
	testenv.PutRecords(t, s.kin, s.stream, during)
	waitFor(t, settle, "several failed PUTs while S3 is down", func() (bool, string) {
		// The whole time, the checkpoint stays where delivery stopped.
		if cp := s.leases(t)[shard].Checkpoint; record.CompareSequenceNumbers(cp.SequenceNumber, lastBefore) != 0 {
			t.Fatalf("checkpoint moved to %s while S3 was down (last delivered %s)", cp.String(), lastBefore)
		}
		n := d.logCount("s3 put object failed; retrying")
		return n >= 6, itoa(n) + " failed PUTs"
	})
	// Backpressure: with 1,000 records in flight the reader stopped, far short of the 3,000
	// waiting; a reading that began after a lost lease starts again from the checkpoint, with a
	// cap of its own.
	readings := d.handedPerReading(shard, outageFrom)
	for i, n := range readings {
		if n > inFlightCap {
			t.Fatalf("%d records read during the outage by reading %d of %v, above the in-flight cap of %d", n, i+1, readings, inFlightCap)
		}
	}
	select {
	case <-d.exited:
		t.Fatalf("the daemon exited during the outage (code %d)", d.code)
	default:
	}

	m.Start() // an empty moto: make the bucket again
	testenv.CreateBucket(t, s.s3, s.bucket)
	waitFor(t, settle, "every record written during the outage in S3", func() (bool, string) {
		counts, _ := s.delivered(t)
		n, _ := missing(during, counts)
		return n == 0, itoa(n) + " missing"
	})
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(settle); code != 0 {
		t.Fatalf("exit code %d after recovery", code)
	}
	t.Logf("outage: reading stopped after %v records (one count per reading of the shard; cap %d in flight) of %d; %d failed PUTs retried; all arrived after recovery",
		readings, inFlightCap, len(during), d.logCount("s3 put object failed; retrying"))
}

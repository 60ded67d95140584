package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/testenv"
)

// withTimeouts sets short aws.timeouts in a config written by e2eStack.config.
func withTimeouts(t *testing.T, cfg string) {
	t.Helper()
	rewrite(t, cfg, "  s3_use_path_style: true\n", "  s3_use_path_style: true\n  timeouts: {read: 2s, write: 2s, upload: 3s}\n")
}

// records parses every line the daemon wrote as a JSON object, failing the test on a line that
// is not one (a raw SDK line, a plain-text error) or that repeats a key (sink=archive twice).
func (d *daemon) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(d.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("a log line is not JSON (%v): %q", err, line)
		}
		if k := repeatedKey(line); k != "" {
			t.Fatalf("a log line repeats the key %q: %s", k, line)
		}
		out = append(out, rec)
	}
	return out
}

// repeatedKey returns a top-level key that occurs twice in the JSON object line, or "".
func repeatedKey(line []byte) string {
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := tok.(string)
		if seen[key] {
			return key
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// outageLines returns the daemon's outage lines about dependency, in order.
func (d *daemon) outageLines(t *testing.T, dependency string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range d.records(t) {
		switch r["msg"] {
		case outage.MsgFailing, outage.MsgStillFailing, outage.MsgRecovered:
			if r["dependency"] == dependency {
				out = append(out, r)
			}
		}
	}
	return out
}

// outageCount counts the daemon's outage lines about dependency with message msg.
func (d *daemon) outageCount(t *testing.T, dependency, msg string) int {
	t.Helper()
	n := 0
	for _, l := range d.outageLines(t, dependency) {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// startFlowing puts recs, starts a daemon with short aws.timeouts, and waits until recs are
// delivered and checkpointed.
func (s *e2eStack) startFlowing(t *testing.T, recs []testenv.Rec) (*daemon, []testenv.Put) {
	t.Helper()
	cfg := s.config(t, 1, 1, "")
	withTimeouts(t, cfg)
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	d := startDaemon(t, cfg, "worker-a")
	waitFor(t, 60*time.Second, "the first records delivered and checkpointed", func() (bool, string) {
		l := s.leases(t)[puts[0].ShardID]
		return l.Checkpoint.SequenceNumber == puts[len(puts)-1].SequenceNumber, "at " + l.Checkpoint.String()
	})
	return d, puts
}

// deliveredThenStop waits until every record of recs is in S3, then stops the daemon with
// SIGTERM and expects exit code 0.
func (s *e2eStack) deliveredThenStop(t *testing.T, d *daemon, recs []testenv.Rec) {
	t.Helper()
	waitFor(t, 60*time.Second, "every record in S3", func() (bool, string) {
		counts, _ := s.delivered(t)
		n, sample := missing(recs, counts)
		return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, sample)
	})
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func msgs(lines []map[string]any) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = fmt.Sprint(l["msg"])
	}
	return out
}

// TestS3FreezeIsLoggedWithinSecondsThenItsRecovery freezes the S3 server (SIGSTOP: connections
// are accepted, nothing answers) while records flow. The daemon must log the outage within 10 s
// of the freeze, naming the sink, the bucket and the timeout that ran out (it used to stay
// silent for three minutes: 3 SDK attempts of a one-minute response timeout); log further
// failures at a bounded rate; log the recovery once after SIGCONT; deliver every record; and
// write only JSON lines without repeated keys.
func TestS3FreezeIsLoggedWithinSecondsThenItsRecovery(t *testing.T) {
	s := newE2EStack(t, 1)
	m := s.withPrivateMoto(t)
	first := makeRecords(0, 100)
	d, _ := s.startFlowing(t, first)
	if lines := d.outageLines(t, "s3"); len(lines) != 0 {
		t.Fatalf("outage lines before the freeze: %v", lines)
	}

	frozenAt := time.Now()
	m.Freeze()
	during := makeRecords(100, 200)
	testenv.PutRecords(t, s.kin, s.stream, during)
	waitFor(t, 10*time.Second, "the S3 outage in the log", func() (bool, string) {
		return len(d.outageLines(t, "s3")) > 0, "no line yet"
	})
	took := time.Since(frozenAt)
	line := d.outageLines(t, "s3")[0]
	if line["msg"] != outage.MsgFailing || line["level"] != "WARN" || line["sink"] != "archive" || line["resource"] != s.bucket ||
		!strings.Contains(fmt.Sprint(line["error"]), "aws.timeouts.upload") {
		t.Fatalf("first outage line %v: want a WARN %q naming sink archive, bucket %s and aws.timeouts.upload", line, outage.MsgFailing, s.bucket)
	}
	t.Logf("S3 outage logged %.1fs after the freeze: %v", took.Seconds(), line)

	// More PUTs fail while frozen; they are counted, not each logged.
	waitFor(t, 30*time.Second, "three failed PUTs", func() (bool, string) {
		n := d.logCount("s3 put object failed; retrying")
		return n >= 3, itoa(n) + " failed PUTs (debug lines)"
	})
	if got := msgs(d.outageLines(t, "s3")); len(got) > 1+int(time.Since(frozenAt)/outage.DefaultEvery) {
		t.Fatalf("outage lines while frozen for %v: %q, want at most one per %v", time.Since(frozenAt).Round(time.Second), got, outage.DefaultEvery)
	}

	m.Thaw()
	waitFor(t, 60*time.Second, "the S3 recovery in the log", func() (bool, string) {
		lines := d.outageLines(t, "s3")
		return lines[len(lines)-1]["msg"] == outage.MsgRecovered, fmt.Sprint(msgs(lines))
	})
	s.deliveredThenStop(t, d, append(first, during...))
	lines := d.outageLines(t, "s3")
	recovered := 0
	for _, l := range lines {
		if l["msg"] == outage.MsgRecovered {
			recovered++
		}
	}
	if recovered != 1 || lines[0]["msg"] != outage.MsgFailing {
		t.Fatalf("outage lines %q: want the failure first and one recovery", msgs(lines))
	}
	t.Logf("S3 outage lines: %q; last: %v", msgs(lines), lines[len(lines)-1])
}

// TestStreamFreezeIsLoggedWithinSeconds freezes the stream's server (a private kinesalite) while
// the daemon polls it: the daemon must log the stream's outage within 10 s, naming the shard and
// the timeout that ran out, and its recovery once after SIGCONT, then deliver what was put.
// (The lease table's freeze is TestLeaseTableFrozenIsLoggedWithinSecondsAndRecoveryOnce.)
func TestStreamFreezeIsLoggedWithinSeconds(t *testing.T) {
	s := newE2EStack(t, 1)
	kin := testenv.StartKinesalite(t)
	s.env.Kinesis = kin.Endpoint
	s.kin = testenv.KinesisClient(t, s.env)
	testenv.CreateStream(t, s.kin, s.stream, 1)
	first := makeRecords(0, 100)
	d, puts := s.startFlowing(t, first)

	frozenAt := time.Now()
	kin.Freeze()
	const failing, recovered = outage.MsgFailing, outage.MsgRecovered
	waitFor(t, 10*time.Second, "the stream's outage in the log", func() (bool, string) {
		return d.outageCount(t, "kinesis", failing) > 0, "no line yet"
	})
	line := d.outageLines(t, "kinesis")[0]
	if line["msg"] != failing || line["level"] != "WARN" || line["resource"] != s.stream || line["operation"] != "GetRecords" ||
		line["shard"] != puts[0].ShardID || !strings.Contains(fmt.Sprint(line["error"]), "aws.timeouts.read") {
		t.Fatalf("first outage line %v: want a WARN %q about GetRecords of stream %s naming shard %s and aws.timeouts.read", line, failing, s.stream, puts[0].ShardID)
	}
	t.Logf("stream outage logged %.1fs after the freeze: %v", time.Since(frozenAt).Seconds(), line)

	kin.Thaw()
	waitFor(t, 60*time.Second, "the stream's recovery in the log", func() (bool, string) {
		return d.outageCount(t, "kinesis", recovered) > 0, "not yet"
	})
	if n := d.outageCount(t, "kinesis", failing); n != 1 {
		t.Errorf("%d lines %q for one short outage, want 1", n, failing)
	}
	after := makeRecords(100, 100)
	testenv.PutRecords(t, s.kin, s.stream, after)
	s.deliveredThenStop(t, d, append(first, after...))
	if n := d.outageCount(t, "kinesis", recovered); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
}

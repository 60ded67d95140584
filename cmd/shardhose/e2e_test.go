package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

func compareSeq(a, b string) int { return record.CompareSequenceNumbers(a, b) }

// TestDeliversEveryRecordExactlyOnceAndCheckpointsTheLastSequence is the walking skeleton's core
// promise: 2,000 records with varied partition keys on a 4-shard stream all reach S3, each once,
// and each shard's checkpoint ends at that shard's last sequence number.
func TestDeliversEveryRecordExactlyOnceAndCheckpointsTheLastSequence(t *testing.T) {
	s := newE2EStack(t, 4)
	recs := makeRecords(0, 2000)
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	want := lastSequencePerShard(puts)
	if len(want) != 4 {
		t.Fatalf("records landed on %d shards, want all 4", len(want))
	}

	d := startDaemon(t, s.config(t, 1, 1, ""), "worker-a")
	waitFor(t, 90*time.Second, "all 2,000 records in S3", func() (bool, string) {
		counts, objects := s.delivered(t)
		n, sample := missing(recs, counts)
		return n == 0, strings.Join(append([]string{"missing", itoa(n), "objects", itoa(objects)}, sample...), " ")
	})
	waitFor(t, 30*time.Second, "checkpoints at each shard's last sequence number", func() (bool, string) {
		got := s.leases(t)
		for shard, seq := range want {
			if got[shard].Checkpoint.SequenceNumber != seq {
				return false, shard + " at " + got[shard].Checkpoint.String() + ", want " + seq
			}
		}
		return true, ""
	})

	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	counts, objects := s.delivered(t)
	dups := 0
	for _, r := range recs {
		if c := counts[string(r.Data)]; c != 1 {
			dups += c - 1
		}
	}
	if dups != 0 || len(counts) != len(recs) {
		t.Fatalf("S3 holds %d distinct records and %d duplicates in %d objects, want exactly 2,000 once each", len(counts), dups, objects)
	}
	for shard, l := range s.leases(t) {
		if l.Owner != "" {
			t.Errorf("lease %s still owned by %q after a clean stop", shard, l.Owner)
		}
	}
	t.Logf("2,000 records in %d objects; checkpoints %v", objects, want)
}

// TestRestartAfterSIGTERMLosesNothing stops the daemon with SIGTERM while records are still being
// written to the stream, then starts it again: every record arrives.
func TestRestartAfterSIGTERMLosesNothing(t *testing.T) {
	s := newE2EStack(t, 4)
	all := makeRecords(0, 2000)
	cfg := s.config(t, 1, 300, "") // nothing leaves by the interval: only the drain flushes

	d := startDaemon(t, cfg, "worker-a")
	testenv.PutRecords(t, s.kin, s.stream, all[:500])
	waitFor(t, 60*time.Second, "the first 500 records read", func() (bool, string) {
		n := d.handedToSinks()
		return n >= 500, itoa(n) + " handed on"
	})
	// Stop while the stream keeps receiving records.
	d.cmd.Process.Signal(syscall.SIGTERM)
	testenv.PutRecords(t, s.kin, s.stream, all[500:])
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	readBefore := d.handedToSinks()

	d2 := startDaemon(t, cfg, "worker-b")
	waitFor(t, 60*time.Second, "every record read by the second run", func() (bool, string) {
		n := d2.handedToSinks()
		return readBefore+n >= len(all), itoa(readBefore+n) + " handed to sinks"
	})
	d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("second run's exit code = %d, want 0", code)
	}
	counts, objects := s.delivered(t)
	if n, sample := missing(all, counts); n > 0 {
		t.Fatalf("%d of %d records missing after a SIGTERM restart, e.g. %v", n, len(all), sample)
	}
	dups := 0
	for _, c := range counts {
		dups += c - 1
	}
	if dups > 0 {
		t.Errorf("%d duplicates after a clean drain: a drained worker must checkpoint everything it delivered", dups)
	}
	t.Logf("first run read %d of %d records before SIGTERM; all present in %d objects; %d duplicates", readBefore, len(all), objects, dups)
}

// TestCrashWithBufferedRecordsLosesNothing kills the daemon with SIGKILL while records sit in the
// S3 sink's buffer, undelivered and so not checkpointed; a new worker takes the expired leases and
// reads them again.
func TestCrashWithBufferedRecordsLosesNothing(t *testing.T) {
	s := newE2EStack(t, 4)
	recs := makeRecords(0, 1200)
	testenv.PutRecords(t, s.kin, s.stream, recs)
	cfg := s.config(t, 1, 300, "")

	d := startDaemon(t, cfg, "worker-a")
	waitFor(t, 60*time.Second, "every record read into the buffer", func() (bool, string) {
		n := d.handedToSinks()
		return n >= len(recs), itoa(n) + " handed to sinks"
	})
	if counts, _ := s.delivered(t); len(counts) == len(recs) {
		t.Fatal("every record was already delivered before the crash: the test would prove nothing")
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.waitExit(10 * time.Second)

	d2 := startDaemon(t, cfg, "worker-b")
	waitFor(t, 60*time.Second, "the new worker reads every record again", func() (bool, string) {
		n := d2.handedToSinks()
		return n >= len(recs), itoa(n) + " handed to sinks"
	})
	d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	counts, objects := s.delivered(t)
	if n, sample := missing(recs, counts); n > 0 {
		t.Fatalf("%d of %d records missing after SIGKILL, e.g. %v", n, len(recs), sample)
	}
	dups := 0
	for _, c := range counts {
		dups += c - 1
	}
	t.Logf("after SIGKILL: all %d records present in %d objects; %d duplicates", len(recs), objects, dups)
}

// TestConfigErrorsNameEveryKeyAndExit1 checks the three-mistake file from the walking skeleton.
func TestConfigErrorsNameEveryKeyAndExit1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := `stream:
  starting_position: TRIM_HORIZON
  colour: blue
leases:
  renew_interval: -5s
sinks:
  - name: archive
    type: s3
    s3: {bucket: b}
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"validate", "run"} {
		out, code := runCLI(t, cmd, "-c", path)
		if code != 1 {
			t.Errorf("%s: exit code %d, want 1; output:\n%s", cmd, code, out)
		}
		for _, key := range []string{"stream.colour", "leases.renew_interval", "stream.name"} {
			if !strings.Contains(out, key) {
				t.Errorf("%s: output does not name %s:\n%s", cmd, key, out)
			}
		}
	}
}

// TestStartupFailuresAreOneLineAndExit1 covers a missing stream and an unreachable endpoint.
// The configuration asks for JSON logs, so the error is one JSON line like every other.
func TestStartupFailuresAreOneLineAndExit1(t *testing.T) {
	s := newE2EStack(t, 1)
	missingStream := s.config(t, 1, 1, "")
	rewrite(t, missingStream, "name: "+s.stream, "name: no-such-stream")
	out, code := runCLI(t, "run", "-c", missingStream)
	if last := lastJSONLine(t, out); code != 1 || last["msg"] != "start-up failed" || !strings.Contains(fmt.Sprint(last["error"]), `stream "no-such-stream" not found`) {
		t.Errorf("missing stream: exit %d, output:\n%s", code, out)
	}

	unreachable := s.config(t, 1, 1, "")
	rewrite(t, unreachable, s.env.DynamoDB, "http://127.0.0.1:1")
	out, code = runCLI(t, "run", "-c", unreachable)
	if last := fmt.Sprint(lastJSONLine(t, out)["error"]); code != 1 || !strings.Contains(last, "lease table") || !strings.Contains(last, "127.0.0.1:1") {
		t.Errorf("unreachable DynamoDB: exit %d, output:\n%s", code, out)
	}
}

// lastJSONLine checks that every line of out is a JSON object and returns the last.
func lastJSONLine(t *testing.T, out string) map[string]any {
	t.Helper()
	var last map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		last = nil
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Errorf("a line is not JSON (%v): %q", err, l)
		}
	}
	return last
}

// TestConfigErrorsFollowTheLogFormat: with log.format json a configuration that does not
// validate is reported as one JSON line naming every problem (it used to be plain text, which a
// JSON log collector cannot read); with text it stays a list for a person.
func TestConfigErrorsFollowTheLogFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "stream:\n  colour: blue\nleases:\n  renew_interval: -5s\nlog:\n  format: json\nsinks:\n  - {name: archive, type: s3, s3: {bucket: b}}\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "run", "-c", path)
	last := lastJSONLine(t, out)
	if code != 1 || last["level"] != "ERROR" || last["msg"] != "configuration is not valid" {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	problems := fmt.Sprint(last["problems"])
	for _, key := range []string{"stream.colour", "leases.renew_interval", "stream.name"} {
		if !strings.Contains(problems, key) {
			t.Errorf("problems do not name %s: %s", key, problems)
		}
	}
	out, code = runCLI(t, "run", "-c", path, "--log-format", "text")
	if code != 1 || !strings.HasPrefix(out, "shardhose: "+path+" is not valid:\nstream.colour: unknown key\n") {
		t.Errorf("text format: exit %d, output:\n%s", code, out)
	}

	// A file that does not parse says nothing of its format: auto applies, and stderr is a pipe
	// here, so JSON.
	unparsable := filepath.Join(t.TempDir(), "unparsable.yaml")
	if err := os.WriteFile(unparsable, []byte("stream: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = runCLI(t, "run", "-c", unparsable)
	if last := lastJSONLine(t, out); code != 1 || last["msg"] != "configuration cannot be loaded" || !strings.Contains(fmt.Sprint(last["error"]), "yaml") {
		t.Errorf("unparsable file: exit %d, output:\n%s", code, out)
	}
}

// rewrite replaces old with new in the file at path.
func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(body), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binPath, args...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

func itoa(n int) string { return strconv.Itoa(n) }

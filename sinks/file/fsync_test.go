package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/fsutil/fsutiltest"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

func fsyncConfig(t *testing.T) config.FileSink {
	cfg := fileConfig(t, FormatRaw)
	cfg.Fsync = true
	return cfg
}

// fsyncSink is a sink writing with fsync to a new file through a recorded fsync, retrying at
// once.
func fsyncSink(t *testing.T) (config.FileSink, *Sink, *fsutiltest.Syncs) {
	cfg := fsyncConfig(t)
	rec := &fsutiltest.Syncs{}
	s := newSink(t, cfg, func(o *Options) { o.sync = rec.Sync })
	s.policy.Initial, s.policy.Max = time.Millisecond, time.Millisecond
	return cfg, s, rec
}

func TestCreatingTheFileSyncsItsDirectory(t *testing.T) {
	cfg := fsyncConfig(t)
	rec := &fsutiltest.Syncs{}
	newSink(t, cfg, func(o *Options) { o.sync = rec.Sync })
	calls := rec.Calls()
	if len(calls) != 1 || calls[0].Name != filepath.Dir(cfg.Path) {
		t.Fatalf("fsyncs after creating %s: %+v, want one of its directory", cfg.Path, calls)
	}
	// Opening it again creates nothing: no directory fsync.
	rec2 := &fsutiltest.Syncs{}
	newSink(t, cfg, func(o *Options) { o.sync = rec2.Sync })
	if calls := rec2.Calls(); len(calls) != 0 {
		t.Fatalf("fsyncs after opening an existing file: %+v, want none", calls)
	}
}

// After a failed fsync Linux may have dropped the dirty pages and cleared the error, so a later
// fsync of the same file that succeeds proves nothing. The data since the last good fsync must be
// written again to a new file, synced there, before the Write is acknowledged.
func TestFailedFsyncRewritesTheDataToANewFile(t *testing.T) {
	cfg, s, rec := fsyncSink(t)
	acks := sinktest.NewAckRecorder(t)
	line := func(d string) []record.Record { return []record.Record{{Data: []byte(d)}} }

	if err := s.Write(waitCtx(t), line("a"), acks.Done(1)); err != nil {
		t.Fatal(err)
	}
	rec.FailFiles(1)
	if err := s.Write(waitCtx(t), line("b"), acks.Done(2)); err != nil {
		t.Fatal(err)
	}
	if !acks.Acked(2) {
		t.Fatal("write not acknowledged")
	}
	calls := rec.Calls()
	failed := slices.IndexFunc(calls, func(c fsutiltest.Call) bool { return c.Err != nil })
	if failed < 0 {
		t.Fatalf("no fsync failed: %+v", calls)
	}
	var good *fsutiltest.Call
	for i := failed + 1; i < len(calls); i++ {
		if c := calls[i]; c.Err == nil && !c.Info.IsDir() {
			good = &calls[i]
			break
		}
	}
	if good == nil {
		t.Fatalf("no fsync of the data succeeded after the failure: %+v", calls)
	}
	if os.SameFile(good.Info, calls[failed].Info) {
		t.Fatal("after the failed fsync the same file was synced again and the write acknowledged: a retry that succeeds proves nothing")
	}
	live, err := os.Stat(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(live, good.Info) {
		t.Fatalf("the file synced after the failure is not the one at %s", cfg.Path)
	}
	if got := readLines(t, cfg.Path); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("%s holds %q, want the line whose fsync failed, written again", cfg.Path, got)
	}
	dirSynced := slices.ContainsFunc(calls[failed:], func(c fsutiltest.Call) bool { return c.Info.IsDir() && c.Err == nil })
	if !dirSynced {
		t.Fatal("the directory was not synced after the new file was created")
	}
	// The file whose fsync failed is kept aside, with what was acknowledged before.
	aside, _ := filepath.Glob(cfg.Path + ".fsync-failed-*")
	if len(aside) != 1 {
		t.Fatalf("files set aside: %v, want one", aside)
	}
	if got := readLines(t, aside[0]); len(got) == 0 || got[0] != "a" {
		t.Fatalf("%s holds %q, want the acknowledged line first", aside[0], got)
	}

	// Writing goes on in the new file.
	if err := s.Write(waitCtx(t), line("c"), acks.Done(3)); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, cfg.Path); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("%s holds %q, want b then c", cfg.Path, got)
	}
}

// A Write whose fsync keeps failing until its context ends is not acknowledged, and its lines
// are rewritten to a new file by the next Write.
func TestFsyncFailingUntilTheContextEndsIsNotAcknowledged(t *testing.T) {
	cfg, s, rec := fsyncSink(t)
	acks := sinktest.NewAckRecorder(t)
	rec.FailFiles(1 << 30)
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.Write(short, []record.Record{{Data: []byte("a")}}, acks.Done(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write = %v, want the context's deadline", err)
	}
	if acks.Acked(1) {
		t.Fatal("a write whose fsync never succeeded was acknowledged")
	}
	rec.FailFiles(0)
	if err := s.Write(waitCtx(t), []record.Record{{Data: []byte("b")}}, acks.Done(2)); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, cfg.Path); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("%s holds %q, want a (rewritten) then b", cfg.Path, got)
	}
	// After the last failed fsync a new file was created (its directory synced) before the
	// lines were synced again. (Inodes cannot tell the files apart here: the one removed is free
	// for reuse.)
	calls := rec.Calls()
	lastFailed := -1
	for i, c := range calls {
		if c.Err != nil {
			lastFailed = i
		}
	}
	after := calls[lastFailed+1:]
	newDir := slices.IndexFunc(after, func(c fsutiltest.Call) bool { return c.Info.IsDir() })
	if newDir < 0 || !slices.ContainsFunc(after[newDir:], func(c fsutiltest.Call) bool { return !c.Info.IsDir() && c.Err == nil }) {
		t.Fatalf("fsyncs after the last failure: %+v, want a new file (directory synced) and then its data synced", after)
	}
	if aside, _ := filepath.Glob(cfg.Path + ".fsync-failed-*"); len(aside) != 0 {
		t.Fatalf("files set aside: %v, want none (nothing was ever on disk)", aside)
	}
}

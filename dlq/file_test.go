package dlq

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/shardhose/shardhose/internal/fsutil/fsutiltest"
)

// Creating the file syncs its directory, so that the file's name survives a crash too.
func TestFileDeadLettersSyncTheDirectoryOnCreation(t *testing.T) {
	dir := t.TempDir()
	for _, send := range []bool{false, true} {
		path := filepath.Join(dir, "dead-letters.jsonl")
		os.Remove(path)
		d, err := NewFile(path)
		if err != nil {
			t.Fatal(err)
		}
		syncs := &fsutiltest.Syncs{}
		d.sync = syncs.Sync
		if send {
			err = d.Send(t.Context(), smallFailure("shardId-000000000001", 1, 10, testTime))
		} else {
			err = d.Check(t.Context())
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(syncs.Dirs()) != 1 || syncs.Dirs()[0] != dir {
			t.Fatalf("send=%v: directory fsyncs %v, want one of %s", send, syncs.Dirs(), dir)
		}
		// The file exists now: no further directory fsync.
		if err := d.Send(t.Context(), smallFailure("shardId-000000000001", 1, 10, testTime)); err != nil {
			t.Fatal(err)
		}
		if len(syncs.Dirs()) != 1 {
			t.Fatalf("send=%v: directory fsyncs %v after appending to an existing file, want still one", send, syncs.Dirs())
		}
	}
}

// A dead letter whose fsync failed is cut off again: its pages may have been dropped, so the
// retry writes the whole line anew and the file holds it once, whole.
func TestFileDeadLetterWhoseFsyncFailedIsCutOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	d, err := NewFile(path)
	if err != nil {
		t.Fatal(err)
	}
	syncs := &fsutiltest.Syncs{}
	syncs.FailFiles(1)
	d.sync = syncs.Sync
	f := smallFailure("shardId-000000000001", 3, 100, testTime)
	if err := d.Send(t.Context(), f); err == nil {
		t.Fatal("Send succeeded although its fsync failed")
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("after the failed fsync the file holds %d bytes (%v), want the line cut off", st.Size(), err)
	}
	if err := d.Send(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	r, err := NewFileReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(t.Context())
	n := 0
	for {
		l, err := r.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || l.Err != nil {
			t.Fatalf("read: %v %v", err, l.Err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d dead letters in the file, want the one sent", n)
	}
}

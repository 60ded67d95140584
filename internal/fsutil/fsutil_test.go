package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenAppendReportsCreation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	for i, wantCreated := range []bool{true, false} {
		f, created, err := OpenAppend(path, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if created != wantCreated {
			t.Fatalf("open %d: created = %v, want %v", i, created, wantCreated)
		}
		if _, err := f.WriteString("x"); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if b, _ := os.ReadFile(path); string(b) != "xx" {
		t.Fatalf("file holds %q, want both appends", b)
	}
	if _, _, err := OpenAppend(filepath.Join(path, "below-a-file"), 0o600); err == nil {
		t.Fatal("opening below a regular file succeeded")
	}
}

func TestSyncDirSyncsTheParent(t *testing.T) {
	dir := t.TempDir()
	var synced []string
	rec := func(f *os.File) error { synced = append(synced, f.Name()); return nil }
	if err := SyncDir(filepath.Join(dir, "out"), rec); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != dir {
		t.Fatalf("synced %v, want %s", synced, dir)
	}
	failing := func(*os.File) error { return errors.New("EIO") }
	if err := SyncDir(filepath.Join(dir, "out"), failing); err == nil {
		t.Fatal("a failed directory fsync was not reported")
	}
	if err := SyncDir(filepath.Join(dir, "missing", "out"), Sync); err == nil {
		t.Fatal("syncing a missing directory succeeded")
	}
	if err := SyncDir(filepath.Join(dir, "out"), Sync); err != nil {
		t.Fatalf("real fsync of %s: %v", dir, err)
	}
}

// Package fsutil holds what the local-file writers (the file sink, the file dead-letter
// destination) need to make a write durable on Linux: fsync of the file, and fsync of its
// directory after the file was created or renamed, so that the name survives a crash too.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncFunc flushes an open file or directory to disk: (*os.File).Sync, or a fake in tests that
// inject fsync failures.
type SyncFunc func(*os.File) error

// Sync is the real SyncFunc.
func Sync(f *os.File) error { return f.Sync() }

// OpenAppend opens path for appending, creating it with perm when missing, and reports whether
// this call created it (the caller then syncs the directory: SyncDir).
func OpenAppend(path string, perm os.FileMode) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, perm)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, false, err
	}
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) { // created by someone else in between
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, perm)
		return f, false, err
	}
	return f, err == nil, err
}

// SyncDir syncs the directory holding path with sync, making the creation, removal or renaming
// of path durable.
func SyncDir(path string, sync SyncFunc) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to sync it: %w", dir, err)
	}
	serr := sync(d)
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, serr)
	}
	if cerr != nil {
		return fmt.Errorf("close directory %s: %w", dir, cerr)
	}
	return nil
}

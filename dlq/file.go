package dlq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/shardhose/shardhose/internal/fsutil"
)

// File appends each dead letter as one JSON line (records inline) to a local file, and syncs the
// file (and, when Send created it, its directory) to disk before Send returns. The file is opened
// for each Send and closed after it, so it can be moved away (rotated) between sends. A write
// that fails half-way, or whose fsync fails, is cut off again, so the file never holds a partial
// line and the retry writes the line anew. Meant for development; within one process it is safe
// for concurrent use (sends are serialized), but two processes must not share the file.
type File struct {
	path string
	mu   sync.Mutex
	sync fsutil.SyncFunc // flushes the file and its directory to disk; tests inject failures
}

var (
	_ Destination = (*File)(nil)
	_ Checker     = (*File)(nil)
)

// fileMode keeps dead letters, which hold record data, readable by their owner only.
const fileMode = 0o600

// NewFile returns a destination appending to the file at path, created when missing.
func NewFile(path string) (*File, error) {
	if path == "" {
		return nil, errors.New("file dead letters: a path is required")
	}
	return &File{path: path, sync: fsutil.Sync}, nil
}

// Name returns "file <path>".
func (d *File) Name() string { return "file " + d.path }

// Send appends f's dead letter; see Destination. ctx is checked before writing only: a local
// write is not interruptible.
func (d *File) Send(ctx context.Context, f Failure) error {
	if len(f.Records) == 0 {
		return fmt.Errorf("dead letter to file %s: %w", d.path, ErrNoRecords)
	}
	body, err := encode(NewMessage(f))
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dead letter to file %s: %w", d.path, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.appendLine(append(body, '\n'))
}

func (d *File) appendLine(line []byte) (err error) {
	fh, err := d.open()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := fh.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("dead letter to file: close %s: %w", d.path, cerr)
		}
	}()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("dead letter to file: %w", err)
	}
	// A failed write leaves a partial line, and a failed fsync may have dropped the line's pages
	// (Linux then reports success to a later fsync): either way the line is cut off again, so
	// that the retry writes it whole and the file never holds a line that is not on disk.
	cutOff := func(what string, err error) error {
		if terr := fh.Truncate(st.Size()); terr != nil {
			return fmt.Errorf("dead letter to file %s: %s: %w (and cutting off the line failed: %v)", d.path, what, err, terr)
		}
		return fmt.Errorf("dead letter to file %s: %s: %w", d.path, what, err)
	}
	if _, err := fh.Write(line); err != nil {
		return cutOff("write", err)
	}
	if err := d.sync(fh); err != nil {
		return cutOff("fsync", err)
	}
	return nil
}

// open opens the file for appending; when it creates the file it syncs the directory, so that
// the file's name is on disk before any dead letter in it is reported stored.
func (d *File) open() (*os.File, error) {
	fh, created, err := fsutil.OpenAppend(d.path, fileMode)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	if created {
		if err := fsutil.SyncDir(d.path, d.sync); err != nil {
			fh.Close()
			return nil, fmt.Errorf("dead-letter file %s: %w", d.path, err)
		}
	}
	return fh, nil
}

// Check verifies that the file can be opened for appending (creating it when missing).
func (d *File) Check(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fh, err := d.open()
	if err != nil {
		return err
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("dead-letter file: close %s: %w", d.path, err)
	}
	return nil
}

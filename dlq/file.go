package dlq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
)

// File appends each dead letter as one JSON line (records inline) to a local file, and syncs the
// file to disk before Send returns. The file is opened for each Send and closed after it, so it
// can be moved away (rotated) between sends. A write that fails half-way is cut off again, so
// the file never holds a partial line. Meant for development; within one process it is safe for
// concurrent use (sends are serialized), but two processes must not share the file.
type File struct {
	path string
	mu   sync.Mutex
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
	return &File{path: path}, nil
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
	fh, err := os.OpenFile(d.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, fileMode)
	if err != nil {
		return fmt.Errorf("dead letter to file: %w", err)
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
	if _, err := fh.Write(line); err != nil {
		if terr := fh.Truncate(st.Size()); terr != nil {
			return fmt.Errorf("dead letter to file %s: write: %w (and cutting off the partial line failed: %v)", d.path, err, terr)
		}
		return fmt.Errorf("dead letter to file %s: write: %w", d.path, err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("dead letter to file %s: sync: %w", d.path, err)
	}
	return nil
}

// Check verifies that the file can be opened for appending (creating it when missing).
func (d *File) Check(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fh, err := os.OpenFile(d.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, fileMode)
	if err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("dead-letter file: close %s: %w", d.path, err)
	}
	return nil
}

// Package fsutiltest is a fake fsync for tests of the local-file writers: it records every call
// and fails those of regular files on demand, as a disk that reports an I/O error does.
package fsutiltest

import (
	"errors"
	"os"
	"slices"
	"sync"
)

// ErrInjected is the error of the fsyncs Syncs fails.
var ErrInjected = errors.New("input/output error (injected)")

// Call is one fsync asked for.
type Call struct {
	Name string
	Info os.FileInfo // of the file synced, to tell files apart (os.SameFile)
	Err  error
}

// Syncs is a fsutil.SyncFunc (its Sync method) that really syncs, except the fsyncs of regular
// files it was told to fail. Safe for concurrent use.
type Syncs struct {
	mu        sync.Mutex
	calls     []Call
	failFiles int
}

// Sync records the call and syncs f, or fails it with ErrInjected.
func (s *Syncs) Sync(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Call{Name: f.Name(), Info: info}
	if !info.IsDir() && s.failFiles > 0 {
		s.failFiles--
		c.Err = ErrInjected
	} else {
		c.Err = f.Sync()
	}
	s.calls = append(s.calls, c)
	return c.Err
}

// FailFiles makes the next n fsyncs of regular files fail (0: none).
func (s *Syncs) FailFiles(n int) {
	s.mu.Lock()
	s.failFiles = n
	s.mu.Unlock()
}

// Calls returns the fsyncs so far, in order.
func (s *Syncs) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Dirs returns the names of the directories synced so far, in order.
func (s *Syncs) Dirs() []string {
	var out []string
	for _, c := range s.Calls() {
		if c.Info.IsDir() {
			out = append(out, c.Name)
		}
	}
	return out
}

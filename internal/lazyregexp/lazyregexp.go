// Package lazyregexp holds regular expressions that are compiled on first use rather than when
// the program starts. Validation patterns with counted repetition ({1,256}) compile to large
// programs: compiled at package initialisation, the configuration's patterns alone cost every
// start of the binary (every subcommand) milliseconds of CPU and megabytes of garbage, although a
// run matches only the few its configuration uses. NewBounded avoids the large program
// altogether for the common case of a name's length limit.
package lazyregexp

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled the first time it is matched, optionally with bounds
// on the length of what it matches. It is safe for concurrent use. An invalid pattern panics at
// first use, as regexp.MustCompile does at start: every pattern must be exercised by a test.
type Regexp struct {
	str      string
	min, max int // bounds on the length of a match in bytes; max 0 means none
	once     sync.Once
	rx       *regexp.Regexp
}

// New returns the regular expression str, compiled on first use.
func New(str string) *Regexp { return &Regexp{str: str} }

// NewBounded returns a regular expression that matches what the anchored pattern str (^...$)
// matches, provided the whole string is min to max bytes long: `^[a-z]{3,255}$` is
// NewBounded(`^[a-z]+$`, 3, 255), a program of a few states instead of one per repetition. str
// must match only ASCII text, so that its bytes are its characters.
func NewBounded(str string, min, max int) *Regexp { return &Regexp{str: str, min: min, max: max} }

func (r *Regexp) re() *regexp.Regexp {
	r.once.Do(func() { r.rx = regexp.MustCompile(r.str) })
	return r.rx
}

func (r *Regexp) inBounds(s string) bool {
	return r.max == 0 || (len(s) >= r.min && len(s) <= r.max)
}

// MatchString reports whether s contains a match of the expression (within the bounds).
func (r *Regexp) MatchString(s string) bool { return r.inBounds(s) && r.re().MatchString(s) }

// FindStringSubmatch returns the leftmost match of the expression in s and its submatches, or nil.
func (r *Regexp) FindStringSubmatch(s string) []string {
	if !r.inBounds(s) {
		return nil
	}
	return r.re().FindStringSubmatch(s)
}

// String returns the pattern (without its bounds).
func (r *Regexp) String() string { return r.str }

// Command testsummary reads the event stream of `go test -json` on stdin and writes what go test
// writes without -v, then a closing summary: the skipped tests grouped by the reason they gave,
// and, alone on the last line, "N passed, N failed, N skipped" (tests and subtests, fuzz seeds
// included).
//
// A package's own lines ("ok", "FAIL", build errors, panics) are written as they come; a test's
// output is written only when it fails. Lines that are not JSON events are passed through. It
// exits 1 when a test, a package or a build failed, so that
//
//	set -o pipefail; go test -json ./... | go run ./internal/testsummary
//
// fails when either side does.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // build-output and build-fail events
	FailedBuild string // a package's fail event when its build failed
}

// summary is what the stream said, in order.
type summary struct {
	out                     io.Writer
	passed, failed, skipped int
	broken                  bool                           // a package or build failed
	output                  map[string][]string            // package+test → its output so far
	skips                   map[string]map[string][]string // reason → package → test names
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, output: map[string][]string{}, skips: map[string]map[string][]string{}}
}

// line handles one line of input.
func (s *summary) line(raw string) {
	var e event
	if !strings.HasPrefix(raw, "{") || json.Unmarshal([]byte(raw), &e) != nil || e.Action == "" {
		fmt.Fprintln(s.out, raw)
		return
	}
	key := e.Package + " " + e.Test
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "build-fail":
		s.broken = true
	case "output":
		if e.Test == "" {
			if e.Output != "PASS\n" { // go test writes it only with -v
				fmt.Fprint(s.out, e.Output)
			}
			return
		}
		s.output[key] = append(s.output[key], e.Output)
	case "pass":
		if e.Test != "" {
			s.passed++
		}
		delete(s.output, key)
	case "fail":
		if e.Test == "" {
			s.broken = true
			return
		}
		s.failed++
		for _, l := range s.output[key] {
			if !strings.HasPrefix(l, "=== ") { // === RUN, PAUSE, CONT: go test's -v lines
				fmt.Fprint(s.out, l)
			}
		}
		delete(s.output, key)
	case "skip":
		if e.Test == "" {
			return // a package without tests
		}
		s.skipped++
		reason := skipReason(s.output[key])
		if s.skips[reason] == nil {
			s.skips[reason] = map[string][]string{}
		}
		s.skips[reason][e.Package] = append(s.skips[reason][e.Package], e.Test)
		delete(s.output, key)
	}
}

// skipReason returns what a skipped test printed, without go test's own lines and the
// file:line prefix of t.Skip's message.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		if file, msg, ok := strings.Cut(l, ": "); ok && strings.Contains(file, ".go:") && !strings.Contains(file, " ") {
			l = msg
		}
		l = strings.TrimPrefix(l, "skipped: ")
		parts = append(parts, l)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " / ")
}

// close writes the skipped tests by reason and the summary line, and reports whether all passed.
func (s *summary) close() bool {
	if s.skipped > 0 {
		fmt.Fprintf(s.out, "\nskipped tests, by reason:\n")
		count := func(r string) int {
			n := 0
			for _, tests := range s.skips[r] {
				n += len(tests)
			}
			return n
		}
		reasons := slices.Collect(maps.Keys(s.skips))
		sort.Slice(reasons, func(i, j int) bool {
			if a, b := count(reasons[i]), count(reasons[j]); a != b {
				return a > b
			}
			return reasons[i] < reasons[j]
		})
		for _, r := range reasons {
			fmt.Fprintf(s.out, "  %d: %s\n", count(r), r)
			for _, pkg := range slices.Sorted(maps.Keys(s.skips[r])) {
				fmt.Fprintf(s.out, "      %s: %s\n", pkg, strings.Join(s.skips[r][pkg], ", "))
			}
		}
	}
	fmt.Fprintf(s.out, "\n%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return s.failed == 0 && !s.broken
}

func run(in io.Reader, out io.Writer) bool {
	s := newSummary(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		s.line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "testsummary: read go test's output: %v\n", err)
		s.broken = true
	}
	return s.close()
}

func main() {
	w := bufio.NewWriter(os.Stdout)
	ok := run(os.Stdin, lineFlusher{w})
	w.Flush()
	if !ok {
		os.Exit(1)
	}
}

// lineFlusher flushes after every write, so that progress shows as go test makes it.
type lineFlusher struct{ w *bufio.Writer }

func (l lineFlusher) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err == nil {
		err = l.w.Flush()
	}
	return n, err
}

package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCPUProfileOfTheWholeCommand: with SHARDHOSE_DEBUG_CPU_PROFILE set, a command writes a CPU
// profile (pprof's gzipped format) to that file and otherwise behaves as without it.
func TestCPUProfileOfTheWholeCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	cmd := exec.CommandContext(t.Context(), binPath, "version")
	cmd.Env = append(os.Environ(), cpuProfileEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "shardhose ") {
		t.Fatalf("version with a profile: %v: %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no profile written: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("profile is not gzipped: %v", err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("reading the profile: %v", err)
	}
	// The profile's string table names its sample types.
	for _, want := range []string{"samples", "cpu", "nanoseconds"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("profile lacks the sample type %q: not a CPU profile", want)
		}
	}
}

// TestCPUProfileThatCannotBeWrittenDoesNotStopTheCommand: an unwritable profile path is reported
// on stderr, naming the variable, and the command still runs and succeeds.
func TestCPUProfileThatCannotBeWrittenDoesNotStopTheCommand(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), binPath, "version")
	cmd.Env = append(os.Environ(), cpuProfileEnv+"="+filepath.Join(t.TempDir(), "no-such-dir", "cpu.pprof"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("version failed: %v: %s", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "shardhose ") {
		t.Errorf("version printed %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), cpuProfileEnv) {
		t.Errorf("stderr does not name %s: %q", cpuProfileEnv, stderr.String())
	}
}

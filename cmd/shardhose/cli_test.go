package main

import (
	"strings"
	"testing"
)

// TestCLIMessagesANewcomerMeets: the messages of the commands a new user tries first say what to
// do next.
func TestCLIMessagesANewcomerMeets(t *testing.T) {
	t.Setenv("SHARDHOSE_CONFIG", "")
	cases := []struct {
		name    string
		args    []string
		code    int
		want    []string
		notWant []string
	}{
		{"validate without -c hints at -c", []string{"validate"}, exitConfig,
			[]string{"no file given: use -c FILE", "stream.name: missing"}, nil},
		{"a missing file is no such file", []string{"validate", "-c", "does-not-exist.yaml"}, exitConfig,
			[]string{"does-not-exist.yaml: no such file"}, []string{"is not valid"}},
		{"produce --help speaks of sending", []string{"produce", "--help"}, exitOK,
			[]string{"--stream-name", "send to", "--count"}, []string{"--worker-id", "consume", "lease"}},
		{"dlq inspect without a destination prints dlq's usage", []string{"dlq", "inspect", "-c", "testdata/no-dead-letter.yaml"}, exitConfig,
			[]string{"no dead_letter destination is configured", "shardhose dlq inspect -c FILE"}, []string{"shardhose run      -c FILE"}},
		{"the command list names iam-policy and the dlq commands", []string{"help"}, exitOK,
			[]string{"shardhose iam-policy -c FILE", "shardhose dlq inspect -c FILE", "shardhose dlq replay"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestVersionNamesVersionCommitAndGo(t *testing.T) {
	old, oldCommit := buildVersion, buildCommit
	t.Cleanup(func() { buildVersion, buildCommit = old, oldCommit })

	buildVersion, buildCommit = "v1.4.0", "0123456789ab"
	if got, want := currentBuild().String(), "shardhose v1.4.0 (commit 0123456789ab, go1."; !strings.HasPrefix(got, want) {
		t.Errorf("with link-time values: %q, want prefix %q", got, want)
	}
	buildVersion, buildCommit = "", ""
	b := currentBuild()
	if b.Version == "" || strings.Contains(b.Version, "devel") || b.Commit == "" || !strings.HasPrefix(b.Go, "go1.") {
		t.Errorf("without link-time values: %+v; want a version that is not devel, a commit (or unknown) and the Go version", b)
	}
}

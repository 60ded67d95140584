package iampolicy

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardhose/shardhose/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden derives the policy of each configuration in testdata/ (one per sink type, each with
// a different dead-letter destination) and compares it with the .json file beside it.
func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no test configurations: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Load(config.LoadOptions{Path: path, Environ: func() []string { return nil }})
			if err != nil {
				t.Fatalf("%s is not valid: %v", path, err)
			}
			// s3.yaml names its stream by ARN, which gives the account; file.yaml shows the
			// policy (and its warning) when the account is not known.
			opts := Options{Account: "123456789012"}
			if name == "s3" || name == "file" {
				opts = Options{}
			}
			res, err := For(cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(struct {
				Policy   Policy   `json:"policy"`
				Warnings []string `json:"warnings,omitempty"`
			}{res.Policy, res.Warnings}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(path, ".yaml") + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./iampolicy -update to write it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("policy for %s differs from %s:\n%s", path, golden, got)
			}
		})
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad loads arbitrary YAML files, as the daemon does at start-up (no environment, no
// flags). Load must not panic; a file it accepts must hold a configuration that validates; a
// file it refuses must get an error that says something, with every problem described; and
// loading the same file twice must give the same answer.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"stream: {name: orders}\nsinks:\n  - {name: lake, type: s3, s3: {bucket: my-bucket}}\n",
		"stream: {name: orders, starting_position: AT_TIMESTAMP, starting_timestamp: 2025-01-02T03:04:05Z}\n",
		"stream:\n  name: orders\nsinks: []\nunknown: 1\n",
		"stream: {name: [1, 2]}\nlog: {level: loud}\n",
		"sinks:\n  - name: a\n    type: http\n    http: {url: 'http://127.0.0.1:1/x', buffering: {size_mib: -1}}\n",
		"stream: {name: o}\nsinks: [{name: s, type: s3, s3: {bucket: b, prefix: '!{timestamp:yyyy}/'}}]\nprocessing: {filter_criteria: [{pattern: '{\"data\": {\"a\": [1]}}'}]}\n",
		"&a [*a]", "- - -", "{", ":", "\t", "",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml []byte) {
		path := filepath.Join(dir, "shardhose.yaml")
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		opts := LoadOptions{Path: path, Environ: func() []string { return nil }}
		cfg, err := Load(opts)
		_, again := Load(opts)
		if (err == nil) != (again == nil) || err != nil && err.Error() != again.Error() {
			t.Fatalf("two loads of the same file: %v, then %v", err, again)
		}
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Load accepted a configuration that does not validate: %v", verr)
			}
			return
		}
		if err.Error() == "" {
			t.Fatal("Load failed with an empty error")
		}
		var problems Errors
		if errors.As(err, &problems) {
			if len(problems) == 0 {
				t.Fatal("Load failed with an empty list of problems")
			}
			for _, p := range problems {
				if p.Problem == "" {
					t.Fatalf("a problem without a description in %v", err)
				}
			}
		}
	})
}

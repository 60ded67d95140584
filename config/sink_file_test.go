package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const fileExample = "../configs/examples/sink_file.yaml"

func TestFileDefaults(t *testing.T) {
	want := FileSink{Path: "-", Format: "raw", Fsync: true}
	if d := FileDefaults(); d != want {
		t.Fatalf("FileDefaults() = %+v, want %+v", d, want)
	}
}

func TestFileRules(t *testing.T) {
	const p = "sinks[1].file"
	rules := []struct {
		name string
		set  func(*FileSink)
		key  string
	}{
		{"defaults", func(*FileSink) {}, ""},
		{"a file", func(s *FileSink) { s.Path = "/var/log/shardhose/records.ndjson" }, ""},
		{"json", func(s *FileSink) { s.Format = "json" }, ""},
		{"fsync off", func(s *FileSink) { s.Fsync = false }, ""},
		{"no path", func(s *FileSink) { s.Path = "" }, p + ".path"},
		{"blank path", func(s *FileSink) { s.Path = "  " }, p + ".path"},
		{"NUL in path", func(s *FileSink) { s.Path = "a\x00b" }, p + ".path"},
		{"format csv", func(s *FileSink) { s.Format = "csv" }, p + ".format"},
		{"format JSON", func(s *FileSink) { s.Format = "JSON" }, p + ".format"},
		{"format empty", func(s *FileSink) { s.Format = "" }, p + ".format"},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			s := FileDefaults()
			r.set(&s)
			errs := fileProblems(p, s)
			if r.key == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got:\n%v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Key != r.key {
				t.Fatalf("want exactly one error, for %s; got:\n%v", r.key, errs)
			}
		})
	}
	errs := fileProblems(p, FileSink{Path: "-", Format: "csv"})
	if w := `sinks[1].file.format: "csv" is not allowed: use raw or json`; errs.Error() != w {
		t.Errorf("message = %q, want %q", errs.Error(), w)
	}
}

func TestFileExample(t *testing.T) {
	got, problems, err := decode(LoadOptions{Path: fileExample, Environ: noEnv})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode %s: %v %v", fileExample, err, problems)
	}
	if len(got.Sinks) != 1 || got.Sinks[0].Type != "file" || got.Sinks[0].File == nil {
		t.Fatalf("sinks = %+v, want one file sink", got.Sinks)
	}
	if *got.Sinks[0].File != FileDefaults() {
		t.Errorf("the example's values differ from the defaults: %+v", *got.Sinks[0].File)
	}
	assertSnippetKeys(t, fileExample, "file", reflect.TypeFor[FileSink]())
}

// A file sink entry without a file section is checked as the defaults: standard output, raw.
func TestFileSectionMayBeLeftOut(t *testing.T) {
	c := valid()
	c.Sinks = append(c.Sinks, Sink{Name: "console", Type: "file"})
	err := c.Validate()
	var errs Errors
	if err != nil && !errors.As(err, &errs) {
		t.Fatal(err)
	}
	for _, e := range errs {
		if strings.HasPrefix(e.Key, "sinks[1].file") {
			t.Errorf("a file sink without a section: %v", e)
		}
	}
}

// fileProblems runs the file section's rules on s at key p and returns the problems.
func fileProblems(p string, s FileSink) Errors {
	v := &checker{seen: map[string]bool{}}
	v.sinkFile(p, s)
	return v.errs
}

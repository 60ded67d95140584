package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// noEnv is an empty environment, so tests never see the machine's SHARDHOSE_* variables.
func noEnv() []string { return nil }

func envOf(vars ...string) func() []string { return func() []string { return vars } }

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shardhose.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// minimalFile is the least a file needs to validate.
const minimalFile = `
stream:
  name: from-file
sinks:
  - name: archive
    type: s3
    s3:
      bucket: my-bucket
`

// sinkBlock is a valid sinks list, for files that write their own stream section.
const sinkBlock = `
sinks:
  - name: archive
    type: s3
    s3:
      bucket: my-bucket
`

// asErrors returns err's Errors, failing the test if err is something else.
func asErrors(t *testing.T, err error) Errors {
	t.Helper()
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v (%T) is not config.Errors", err, err)
	}
	return errs
}

func keysOf(errs Errors) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Key
	}
	slices.Sort(out)
	return out
}

func TestLoadMinimalFileGetsDefaults(t *testing.T) {
	cfg, err := Load(LoadOptions{Path: writeFile(t, minimalFile), Environ: noEnv})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Defaults()
	want.Stream.Name = "from-file"
	s3 := S3Defaults()
	s3.Bucket = "my-bucket"
	want.Sinks = []Sink{{Name: "archive", Type: "s3", S3: &s3}}
	want.Leases.WorkerID = cfg.Leases.WorkerID
	if !equalConfig(cfg, want) {
		t.Errorf("Load = %+v\nwant %+v", cfg, want)
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(cfg.Leases.WorkerID, host+"-") {
		t.Errorf("derived worker_id %q does not start with the hostname %q", cfg.Leases.WorkerID, host)
	}
}

func TestLoadPrecedenceFileEnvFlag(t *testing.T) {
	path := writeFile(t, minimalFile+`
aws:
  region: eu-west-1
log:
  level: debug
  format: json
leases:
  worker_id: file-worker
`)
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	fs.String("config", "", "a flag Load does not know; must be ignored")
	if err := fs.Parse([]string{"--log-level=error", "--worker-id", "flag-worker", "--config=x.yaml"}); err != nil {
		t.Fatal(err)
	}
	env := envOf(
		"SHARDHOSE_LOG__LEVEL=warn",            // flag wins
		"SHARDHOSE_LEASES__WORKER_ID=env-wrk",  // flag wins
		"SHARDHOSE_AWS__REGION=eu-central-1",   // env wins over file, no flag
		"SHARDHOSE_STREAM__NAME=from-env",      // env wins over file
		"SHARDHOSE_BATCHING__BATCH_SIZE=500",   // env over default
		"SHARDHOSE_LEASES__LEASE_DURATION=20s", // Go duration from a string
		"SHARDHOSE_TEST_REQUIRE_STACK=1",       // not a config variable: ignored
		"SHARDHOSE_CONFIG=/etc/x.yaml",         // not a config variable: ignored
		"OTHER=1",
	)
	cfg, err := Load(LoadOptions{Path: path, Environ: env, Flags: fs})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"log.level (flag > env > file)", cfg.Log.Level, "error"},
		{"leases.worker_id (flag > env > file)", cfg.Leases.WorkerID, "flag-worker"},
		{"aws.region (env > file)", cfg.AWS.Region, "eu-central-1"},
		{"stream.name (env > file)", cfg.Stream.Name, "from-env"},
		{"log.format (file > default; unchanged flag does not override)", cfg.Log.Format, "json"},
		{"batching.batch_size (env > default)", cfg.Batching.BatchSize, 500},
		{"leases.lease_duration (env duration)", cfg.Leases.LeaseDuration, 20 * time.Second},
		{"aws.endpoint (flag not given)", cfg.AWS.Endpoint, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
}

func TestLoadFlagsWithoutFile(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--stream-name=s", "--aws-region=ap-south-1", "--aws-endpoint=http://127.0.0.1:4566", "--log-format=text"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{Environ: envOf(
		"SHARDHOSE_SINKS__0__NAME=a", "SHARDHOSE_SINKS__0__TYPE=s3", "SHARDHOSE_SINKS__0__S3__BUCKET=bkt",
	), Flags: fs})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Stream.Name != "s" || cfg.AWS.Region != "ap-south-1" || cfg.AWS.Endpoint != "http://127.0.0.1:4566" || cfg.Log.Format != "text" {
		t.Errorf("flags not applied: %+v %+v %+v", cfg.Stream, cfg.AWS, cfg.Log)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].S3 == nil || cfg.Sinks[0].S3.Bucket != "bkt" || cfg.Sinks[0].S3.MaxUploads != S3Defaults().MaxUploads {
		t.Errorf("sink from the environment = %+v", cfg.Sinks)
	}
}

func TestLoadEnvOverridesSinkEntry(t *testing.T) {
	path := writeFile(t, minimalFile+`
  - name: second
    type: s3
    s3:
      bucket: second-bucket
      buffering_hints:
        size_in_mbs: 64
`)
	cfg, err := Load(LoadOptions{Path: path, Environ: envOf(
		"SHARDHOSE_SINKS__1__S3__BUFFERING_HINTS__INTERVAL_IN_SECONDS=60",
		"SHARDHOSE_SINKS__0__S3__BUCKET=env-bucket",
	)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.Sinks[0].S3.Bucket; got != "env-bucket" {
		t.Errorf("sinks[0].s3.bucket = %q, want env-bucket", got)
	}
	h := cfg.Sinks[1].S3.BufferingHints
	if h.SizeInMBs != 64 || h.IntervalInSeconds != 60 {
		t.Errorf("sinks[1].s3.buffering_hints = %+v, want size 64 from the file and interval 60 from the environment", h)
	}
	if cfg.Sinks[1].S3.Bucket != "second-bucket" || cfg.Sinks[1].Name != "second" {
		t.Errorf("sinks[1] lost keys from the file: %+v", cfg.Sinks[1])
	}
}

func TestLoadEachSinkSectionStartsFromS3Defaults(t *testing.T) {
	path := writeFile(t, `
stream: {name: s}
sinks:
  - name: a
    type: s3
    s3: {bucket: bucket-a, max_uploads: 8, retry: {max_elapsed: 1h}}
  - name: b
    type: s3
    s3: {bucket: bucket-b, compression: UNCOMPRESSED}
`)
	cfg, err := Load(LoadOptions{Path: path, Environ: noEnv})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	a, b := *cfg.Sinks[0].S3, *cfg.Sinks[1].S3
	wantA := S3Defaults()
	wantA.Bucket, wantA.MaxUploads, wantA.Retry.MaxElapsed = "bucket-a", 8, time.Hour
	wantB := S3Defaults()
	wantB.Bucket, wantB.Compression = "bucket-b", "UNCOMPRESSED"
	if a != wantA {
		t.Errorf("sinks[0].s3 = %+v, want %+v", a, wantA)
	}
	if b != wantB {
		t.Errorf("sinks[1].s3 = %+v, want %+v", b, wantB)
	}
}

func TestLoadUnknownKeyInFile(t *testing.T) {
	path := writeFile(t, sinkBlock+`
stream:
  name: s
  nmae: typo
batching:
  batchsize: 10
`)
	_, err := Load(LoadOptions{Path: path, Environ: noEnv})
	errs := asErrors(t, err)
	if got, want := keysOf(errs), []string{"batching.batchsize", "stream.nmae"}; !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v\n%v", got, want, err)
	}
	if !strings.Contains(err.Error(), "stream.nmae: unknown key") {
		t.Errorf("message %q does not say stream.nmae: unknown key", err)
	}
	if !strings.Contains(err.Error(), "did you mean stream.name?") {
		t.Errorf("message %q does not suggest stream.name", err)
	}
}

func TestLoadUnknownKeyInSinkAndTopLevel(t *testing.T) {
	path := writeFile(t, `
stream: {name: s}
colour: blue
Stream: {name: x}
sinks:
  - name: a
    type: s3
    s3: {bucket: my-bucket, buffering_hints: {size_in_mb: 3}}
`)
	_, err := Load(LoadOptions{Path: path, Environ: noEnv})
	errs := asErrors(t, err)
	want := []string{"Stream", "colour", "sinks[0].s3.buffering_hints.size_in_mb"}
	if got := keysOf(errs); !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v\n%v", got, want, err)
	}
}

func TestLoadUnknownKeyInEnv(t *testing.T) {
	_, err := Load(LoadOptions{Path: writeFile(t, minimalFile), Environ: envOf("SHARDHOSE_STREAM__NMAE=x")})
	errs := asErrors(t, err)
	if len(errs) != 1 || errs[0].Key != "stream.nmae" {
		t.Fatalf("errors = %v, want one for stream.nmae", err)
	}
	msg := errs[0].Error()
	for _, want := range []string{"stream.nmae: unknown key", "SHARDHOSE_STREAM__NMAE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
}

func TestLoadEnvVariableProblems(t *testing.T) {
	_, err := Load(LoadOptions{Path: writeFile(t, minimalFile), Environ: envOf(
		"SHARDHOSE_STREAM_NAME=single-underscore",
		"SHARDHOSE_SINKS__5__NAME=gap",
		"SHARDHOSE_SINKS__X__NAME=not-an-index",
		"SHARDHOSE_LEASES____TABLE=empty-level",
	)})
	errs := asErrors(t, err)
	want := []string{"SHARDHOSE_LEASES____TABLE", "SHARDHOSE_STREAM_NAME", "sinks.x", "sinks[5]"}
	if got := keysOf(errs); !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v\n%v", got, want, err)
	}
	if !strings.Contains(err.Error(), "SHARDHOSE_STREAM__NAME") {
		t.Errorf("no hint at the double underscore in %q", err)
	}
}

// The product's acceptance case: one unknown key, one negative interval and a missing stream
// name give exactly three errors, each naming its key.
func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	path := writeFile(t, `
stream:
  nmae: orders
leases:
  renew_interval: -3s
sinks:
  - name: archive
    type: s3
    s3:
      bucket: my-bucket
`)
	cfg, err := Load(LoadOptions{Path: path, Environ: noEnv})
	errs := asErrors(t, err)
	want := []string{"leases.renew_interval", "stream.name", "stream.nmae"}
	if got := keysOf(errs); !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v\n%v", got, want, err)
	}
	msg := err.Error()
	for _, line := range []string{
		"stream.nmae: unknown key",
		"leases.renew_interval: -3s is negative",
		"stream.name: missing: set the stream's name or ARN",
	} {
		if !strings.Contains(msg, line) {
			t.Errorf("error does not contain %q:\n%s", line, msg)
		}
	}
	if cfg.Leases.RenewInterval != -3*time.Second {
		t.Errorf("returned config not filled: renew_interval = %v", cfg.Leases.RenewInterval)
	}
}

func TestLoadRejectsValuesOfTheWrongType(t *testing.T) {
	path := writeFile(t, sinkBlock+`
stream:
  name: s
  poll_interval: 5
batching:
  batch_size: 1.5
  max_in_flight_records: true
leases:
  lease_duration: soon
aws:
  s3_use_path_style: maybe
`)
	_, err := Load(LoadOptions{Path: path, Environ: noEnv})
	errs := asErrors(t, err)
	want := []string{"aws.s3_use_path_style", "batching.batch_size", "batching.max_in_flight_records", "leases.lease_duration", "stream.poll_interval"}
	if got := keysOf(errs); !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v\n%v", got, want, err)
	}
	if !strings.Contains(err.Error(), `stream.poll_interval: 5 has no unit`) {
		t.Errorf("a bare number for a duration is not explained:\n%v", err)
	}
}

func TestLoadDurationZeroWithoutUnitIsAccepted(t *testing.T) {
	cfg, err := Load(LoadOptions{Path: writeFile(t, `
stream: {name: s}
sinks: [{name: a, type: s3, s3: {bucket: my-bucket, retry: {max_elapsed: 0}}}]
`), Environ: noEnv})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Sinks[0].S3.Retry.MaxElapsed != 0 {
		t.Errorf("max_elapsed = %v, want 0", cfg.Sinks[0].S3.Retry.MaxElapsed)
	}
}

func TestLoadFileErrors(t *testing.T) {
	_, err := Load(LoadOptions{Path: filepath.Join(t.TempDir(), "absent.yaml"), Environ: noEnv})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want one wrapping os.ErrNotExist", err)
	}
	_, err = Load(LoadOptions{Path: writeFile(t, "stream: [unclosed"), Environ: noEnv})
	var errs Errors
	if err == nil || errors.As(err, &errs) {
		t.Errorf("broken YAML: err = %v, want a parse error", err)
	}
}

func TestLoadEmptyFileIsDefaults(t *testing.T) {
	cfg, err := Load(LoadOptions{Path: writeFile(t, ""), Environ: noEnv})
	errs := asErrors(t, err)
	if got, want := keysOf(errs), []string{"sinks", "stream.name"}; !slices.Equal(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	if cfg.Batching != Defaults().Batching {
		t.Errorf("batching = %+v, want defaults", cfg.Batching)
	}
}

func TestDecoderKey(t *testing.T) {
	for in, want := range map[string]string{
		"stream.name":           "stream.name",
		"sinks.0.s3.bucket":     "sinks[0].s3.bucket",
		"sinks.12.name":         "sinks[12].name",
		"sinks":                 "sinks",
		"leases.lease_duration": "leases.lease_duration",
	} {
		if got := decoderKey(in); got != want {
			t.Errorf("decoderKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// equalConfig compares two configs, sinks' sections by value.
func equalConfig(a, b Config) bool { return reflect.DeepEqual(a, b) }

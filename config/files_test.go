package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

const (
	exampleFile = "../configs/shardhose.example.yaml"
	localFile   = "../configs/local.yaml"
)

func TestShippedFilesValidate(t *testing.T) {
	for _, p := range []string{exampleFile, localFile} {
		t.Run(p, func(t *testing.T) {
			if _, err := Load(LoadOptions{Path: p, Environ: noEnv}); err != nil {
				t.Fatalf("Load(%s):\n%v", p, err)
			}
		})
	}
}

// The example documents the defaults: its values must be Defaults() and S3Defaults(), apart from
// the keys that have none (the stream's name, the sink's name, type and bucket).
func TestExampleFileHoldsTheDefaults(t *testing.T) {
	got, problems, err := decode(LoadOptions{Path: exampleFile, Environ: noEnv})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode: %v %v", err, problems)
	}
	want := Defaults()
	want.Stream.Name = got.Stream.Name
	if len(got.Sinks) != 1 || got.Sinks[0].S3 == nil {
		t.Fatalf("example sinks = %+v, want one s3 sink", got.Sinks)
	}
	s3 := S3Defaults()
	s3.Bucket = got.Sinks[0].S3.Bucket
	want.Sinks = []Sink{{Name: got.Sinks[0].Name, Type: "s3", S3: &s3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example file differs from the defaults:\n got %+v\nwant %+v", got, want)
		if *got.Sinks[0].S3 != s3 {
			t.Errorf("sinks[0].s3:\n got %+v\nwant %+v", *got.Sinks[0].S3, s3)
		}
	}
}

func TestExampleFileHasEveryKey(t *testing.T) {
	b, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var inFile []string
	rawKeys(raw, "", &inFile)
	var inConfig []string
	typeKeys(reflect.TypeFor[Config](), "", &inConfig)
	slices.Sort(inFile)
	slices.Sort(inConfig)
	for _, k := range inConfig {
		if !slices.Contains(inFile, k) {
			t.Errorf("key %s is not in %s", k, exampleFile)
		}
	}
	for _, k := range inFile {
		if !slices.Contains(inConfig, k) {
			t.Errorf("%s has %s, which is not a key", exampleFile, k)
		}
	}
	if len(inConfig) < 40 {
		t.Errorf("only %d keys found in Config; the walk is broken", len(inConfig))
	}
}

// typeKeys lists the leaf keys of struct type t, lists as key[].
func typeKeys(t reflect.Type, prefix string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		key := joinKey(prefix, tagName(f))
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			key += "[]"
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() {
			typeKeys(ft, key, out)
			continue
		}
		*out = append(*out, key)
	}
}

// rawKeys lists the leaf keys of a parsed YAML map the same way.
func rawKeys(v any, prefix string, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			rawKeys(child, joinKey(prefix, k), out)
		}
	case []any:
		for _, e := range x {
			rawKeys(e, prefix+"[]", out)
		}
	default:
		if !slices.Contains(*out, prefix) {
			*out = append(*out, prefix)
		}
	}
}

func TestLocalFileMatchesTheLocalStack(t *testing.T) {
	cfg, err := Load(LoadOptions{Path: localFile, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"aws.endpoints.kinesis", cfg.AWS.Endpoints.Kinesis, "http://127.0.0.1:14567"},
		{"aws.endpoints.dynamodb", cfg.AWS.Endpoints.DynamoDB, "http://127.0.0.1:14570"},
		{"aws.endpoints.s3", cfg.AWS.Endpoints.S3, "http://127.0.0.1:14571"},
		{"aws.credentials", fmt.Sprint(cfg.AWS.Credentials.Source, cfg.AWS.Credentials.AccessKeyID, cfg.AWS.Credentials.SecretAccessKey), "statictesttest"},
		{"aws.region", cfg.AWS.Region, "us-east-1"},
		{"stream.name", cfg.Stream.Name, "shardhose-demo"},
		{"leases.table", cfg.Leases.Table, "shardhose-demo-leases"},
		{"leases.lease_duration", cfg.Leases.LeaseDuration, 10 * time.Second},
		{"leases.renew_interval", cfg.Leases.RenewInterval, 3 * time.Second},
		{"leases.shard_sync_interval", cfg.Leases.ShardSyncInterval, 5 * time.Second},
		{"sinks[0].name", cfg.Sinks[0].Name, "archive"},
		{"sinks[0].s3.bucket", cfg.Sinks[0].S3.Bucket, "shardhose-demo"},
		{"sinks[0].s3.compression", cfg.Sinks[0].S3.Compression, "GZIP"},
		{"sinks[0].s3.buffering_hints", cfg.Sinks[0].S3.BufferingHints, BufferingHints{SizeInMBs: 1, IntervalInSeconds: 10}},
		{"shutdown.drain_timeout", cfg.Shutdown.DrainTimeout, 30 * time.Second},
		{"log", cfg.Log, Log{Format: "text", Level: "info"}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
}

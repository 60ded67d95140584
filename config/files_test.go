package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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

// Every key is documented: the main example documents the core and the s3 sink, and each file in
// configs/examples/ one more area (a sink type, processing, dead letters).
func TestExampleFilesHaveEveryKey(t *testing.T) {
	files := append([]string{exampleFile}, exampleAreaFiles(t)...)
	var inFile []string
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := yaml.Parser().Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var keys []string
		rawKeys(raw, "", &keys)
		for _, k := range keys {
			if !slices.Contains(inFile, k) {
				inFile = append(inFile, k)
			}
		}
	}
	var inConfig []string
	typeKeys(reflect.TypeFor[Config](), "", &inConfig)
	slices.Sort(inFile)
	slices.Sort(inConfig)
	for _, k := range inConfig {
		if !slices.Contains(inFile, k) {
			t.Errorf("key %s is documented in none of %v", k, files)
		}
	}
	for _, k := range inFile {
		if !slices.Contains(inConfig, k) {
			t.Errorf("the example files have %s, which is not a key", k)
		}
	}
	if len(inConfig) < 40 {
		t.Errorf("only %d keys found in Config; the walk is broken", len(inConfig))
	}
}

// Each area's example decodes with no unknown keys or wrong types.
func TestExampleAreaFilesDecode(t *testing.T) {
	for _, path := range exampleAreaFiles(t) {
		t.Run(path, func(t *testing.T) {
			if _, problems, err := decode(LoadOptions{Path: path, Environ: noEnv}); err != nil || len(problems) > 0 {
				t.Fatalf("decode %s: %v %v", path, err, problems)
			}
		})
	}
}

func exampleAreaFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../configs/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in configs/examples: %v", err)
	}
	return files
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

// rawKeys lists the leaf keys of a parsed YAML map the same way: a list of scalars and a map that
// is a map-typed key (such as common_attributes) are leaves.
func rawKeys(v any, prefix string, out *[]string) {
	leaf := func() {
		if !slices.Contains(*out, prefix) {
			*out = append(*out, prefix)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		if ft := fieldTypeAt(prefix); ft != nil && ft.Kind() == reflect.Map {
			leaf()
			return
		}
		for k, child := range x {
			rawKeys(child, joinKey(prefix, k), out)
		}
	case []any:
		if len(x) == 0 {
			leaf()
		}
		for _, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				rawKeys(e, prefix+"[]", out)
			default:
				leaf()
			}
		}
	default:
		leaf()
	}
}

// fieldTypeAt returns the type of the key written as rawKeys writes it (lists as key[]), or nil.
func fieldTypeAt(key string) reflect.Type {
	if key == "" {
		return nil
	}
	t := reflect.TypeFor[Config]()
	for _, part := range strings.Split(key, ".") {
		name := strings.TrimSuffix(part, "[]")
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldByTag(t, name)
		if !ok {
			return nil
		}
		t = f.Type
		if strings.HasSuffix(part, "[]") && t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
	}
	return t
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

package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
)

const s3Example = "../configs/examples/sink_s3.yaml"

// s3Problems runs the s3 section's rules on s at key p and returns the problems.
func s3Problems(p string, s S3Sink) Errors {
	v := &checker{seen: map[string]bool{}}
	v.s3(p, s)
	return v.errs
}

func validS3() S3Sink {
	s := S3Defaults()
	s.Bucket = "my-bucket"
	return s
}

// partitioned makes s a dynamically partitioned sink that is valid.
func partitioned(s *S3Sink) {
	s.DynamicPartitioning = &DynamicPartitioning{Enabled: true, Queries: map[string]string{"event_type": ".event_type"}}
	s.Prefix = "events/type=!{partitionKeyFromQuery:event_type}/!{timestamp:yyyy/MM/dd}/"
	s.ErrorOutputPrefix = "errors/!{firehose:error-output-type}/"
}

// parquet makes s a sink that writes Parquet and is valid.
func parquet(s *S3Sink) {
	s.Compression = "UNCOMPRESSED"
	s.BufferingHints.SizeInMBs = 64
	s.DataFormatConversion = &DataFormatConversion{OutputFormat: "PARQUET", Schema: []SchemaColumn{
		{Name: "event_id", Type: "string", Required: true},
		{Name: "amount", Type: "double"},
	}}
}

func TestS3Rules(t *testing.T) {
	const p = "sinks[0].s3"
	rules := []struct {
		name string
		set  func(*S3Sink)
		key  string // "" when the section must stay valid
	}{
		{"defaults with a bucket", func(*S3Sink) {}, ""},
		{"compression SNAPPY", func(s *S3Sink) { s.Compression = "SNAPPY" }, ""},
		{"compression ZSTD", func(s *S3Sink) { s.Compression = "ZSTD" }, ""},
		{"compression zstd", func(s *S3Sink) { s.Compression = "zstd" }, p + ".compression"},
		{"compression HADOOP_SNAPPY", func(s *S3Sink) { s.Compression = "HADOOP_SNAPPY" }, p + ".compression"},
		{"compression ZIP", func(s *S3Sink) { s.Compression = "ZIP" }, p + ".compression"},
		{"max elapsed set", func(s *S3Sink) { s.Retry.MaxElapsed = 0 }, ""},
		{"delivery exactly_once", func(s *S3Sink) { s.Delivery = DeliveryExactlyOnce }, ""},
		{"delivery empty", func(s *S3Sink) { s.Delivery = "" }, ""},
		{"delivery exactly-once", func(s *S3Sink) { s.Delivery = "exactly-once" }, p + ".delivery"},
		{"delivery exactly_once with dynamic partitioning", func(s *S3Sink) { partitioned(s); s.Delivery = DeliveryExactlyOnce }, ""},

		// prefixes
		{"literal prefix", func(s *S3Sink) { s.Prefix = "logs/" }, ""},
		{"literal error prefix", func(s *S3Sink) { s.ErrorOutputPrefix = "errors/" }, ""},
		{"timestamp prefix needs an error prefix", func(s *S3Sink) { s.Prefix = "logs/!{timestamp:yyyy/MM/dd}/" }, p + ".error_output_prefix"},
		{"timestamp prefix with an error prefix", func(s *S3Sink) {
			s.Prefix = "logs/!{timestamp:'year='yyyy}/!{firehose:random-string}/"
			s.ErrorOutputPrefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/"
		}, ""},
		{"unknown namespace", func(s *S3Sink) { s.Prefix, s.ErrorOutputPrefix = "!{time:yyyy}/", "e/" }, p + ".prefix"},
		{"unclosed expression", func(s *S3Sink) { s.Prefix, s.ErrorOutputPrefix = "!{timestamp:yyyy/", "e/" }, p + ".prefix"},
		{"unsupported pattern letter", func(s *S3Sink) { s.Prefix, s.ErrorOutputPrefix = "!{timestamp:yyyy-MMM}/", "e/" }, p + ".prefix"},
		{"error output type in the prefix", func(s *S3Sink) {
			s.Prefix, s.ErrorOutputPrefix = "!{firehose:error-output-type}/", "e/"
		}, p + ".prefix"},
		{"partition key without dynamic partitioning", func(s *S3Sink) {
			s.Prefix, s.ErrorOutputPrefix = "!{partitionKeyFromLambda:k}/", "e/"
		}, p + ".prefix"},
		{"error prefix without error output type", func(s *S3Sink) {
			s.ErrorOutputPrefix = "errors/!{timestamp:yyyy}/"
		}, p + ".error_output_prefix"},
		{"error prefix with a partition key", func(s *S3Sink) {
			partitioned(s)
			s.ErrorOutputPrefix = "errors/!{firehose:error-output-type}/!{partitionKeyFromQuery:event_type}/"
		}, p + ".error_output_prefix"},

		// dynamic partitioning
		{"partitioned", partitioned, ""},
		{"partitioned by a lambda key", func(s *S3Sink) {
			partitioned(s)
			s.DynamicPartitioning.Queries = nil
			s.Prefix = "!{partitionKeyFromLambda:customer}/"
		}, ""},
		{"disabled section is ignored", func(s *S3Sink) {
			s.DynamicPartitioning = &DynamicPartitioning{Queries: map[string]string{"x": "(("}, MaxActivePartitions: -1}
		}, ""},
		{"partitioned without an error prefix", func(s *S3Sink) { partitioned(s); s.ErrorOutputPrefix = "" }, p + ".error_output_prefix"},
		{"partitioned without a partition key", func(s *S3Sink) {
			partitioned(s)
			s.DynamicPartitioning.Queries = nil
			s.Prefix = "events/"
		}, p + ".prefix"},
		{"query not declared", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.Queries = map[string]string{"other": ".x"} }, p + ".prefix"},
		{"query does not compile", func(s *S3Sink) {
			partitioned(s)
			s.DynamicPartitioning.Queries["event_type"] = ".event_type | ("
		}, p + ".dynamic_partitioning.queries.event_type"},
		{"query empty", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.Queries["event_type"] = " " }, p + ".dynamic_partitioning.queries.event_type"},
		{"query unused", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.Queries["spare"] = ".x" }, p + ".dynamic_partitioning.queries.spare"},
		{"query key name", func(s *S3Sink) {
			partitioned(s)
			s.DynamicPartitioning.Queries["a b"] = ".x"
		}, p + ".dynamic_partitioning.queries.a b"},
		{"partitioned interval 0", func(s *S3Sink) { partitioned(s); s.BufferingHints.IntervalInSeconds = 0 }, p + ".buffering_hints.interval_in_seconds"},
		{"partitioned interval 1", func(s *S3Sink) { partitioned(s); s.BufferingHints.IntervalInSeconds = 1 }, ""},
		{"active partitions 0 is the default", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.MaxActivePartitions = 0 }, ""},
		{"active partitions 5000", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.MaxActivePartitions = 5000 }, ""},
		{"active partitions 5001", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.MaxActivePartitions = 5001 }, p + ".dynamic_partitioning.max_active_partitions"},
		{"active partitions -1", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.MaxActivePartitions = -1 }, p + ".dynamic_partitioning.max_active_partitions"},
		{"buffered = size", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.MaxBufferedMBs = 5 }, ""},
		{"buffered < size", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.MaxBufferedMBs = 4 }, p + ".dynamic_partitioning.max_buffered_mbs"},
		{"buffered 65537", func(s *S3Sink) { partitioned(s); s.DynamicPartitioning.MaxBufferedMBs = 65537 }, p + ".dynamic_partitioning.max_buffered_mbs"},

		// Parquet
		{"parquet", parquet, ""},
		{"parquet partitioned", func(s *S3Sink) { parquet(s); partitioned(s) }, ""},
		{"parquet with GZIP", func(s *S3Sink) { parquet(s); s.Compression = "GZIP" }, p + ".compression"},
		{"parquet size 63", func(s *S3Sink) { parquet(s); s.BufferingHints.SizeInMBs = 63 }, p + ".buffering_hints.size_in_mbs"},
		{"parquet size 128", func(s *S3Sink) { parquet(s); s.BufferingHints.SizeInMBs = 128 }, ""},
		{"parquet size 129", func(s *S3Sink) { parquet(s); s.BufferingHints.SizeInMBs = 129 }, p + ".buffering_hints.size_in_mbs"},
		{"output format ORC", func(s *S3Sink) { parquet(s); s.DataFormatConversion.OutputFormat = "ORC" }, p + ".data_format_conversion.output_format"},
		{"no columns", func(s *S3Sink) { parquet(s); s.DataFormatConversion.Schema = nil }, p + ".data_format_conversion.schema"},
		{"column type", func(s *S3Sink) { parquet(s); s.DataFormatConversion.Schema[1].Type = "float" }, p + ".data_format_conversion.schema[1].type"},
		{"column type missing", func(s *S3Sink) { parquet(s); s.DataFormatConversion.Schema[1].Type = "" }, p + ".data_format_conversion.schema[1].type"},
		{"column name", func(s *S3Sink) { parquet(s); s.DataFormatConversion.Schema[1].Name = "1st" }, p + ".data_format_conversion.schema[1].name"},
		{"column name missing", func(s *S3Sink) { parquet(s); s.DataFormatConversion.Schema[0].Name = "" }, p + ".data_format_conversion.schema[0].name"},
		{"column name twice", func(s *S3Sink) { parquet(s); s.DataFormatConversion.Schema[1].Name = "event_id" }, p + ".data_format_conversion.schema[1].name"},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			s := validS3()
			r.set(&s)
			errs := s3Problems(p, s)
			if r.key == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got:\n%v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Key != r.key {
				t.Fatalf("want exactly one error, for %s; got:\n%v", r.key, errs)
			}
			if !strings.HasPrefix(errs[0].Error(), r.key+": ") {
				t.Errorf("message %q does not start with the key", errs[0].Error())
			}
		})
	}
}

func TestS3Messages(t *testing.T) {
	s := validS3()
	parquet(&s)
	partitioned(&s)
	s.BufferingHints.SizeInMBs = 5
	s.Compression = "SNAPPY"
	s.DynamicPartitioning.Queries["event_type"] = ".a |"
	s.DataFormatConversion.Schema[1].Type = "float"
	errs := s3Problems("sinks[1].s3", s)
	for _, w := range []string{
		`sinks[1].s3.compression: "SNAPPY" is not allowed with Parquet output: use UNCOMPRESSED`,
		"sinks[1].s3.buffering_hints.size_in_mbs: 5 is out of range: with Parquet, size_in_mbs must be 64 to 128",
		`sinks[1].s3.dynamic_partitioning.queries.event_type: ".a |" is not a valid jq query`,
		`sinks[1].s3.data_format_conversion.schema[1].type: "float" is not allowed: use string, int64, double, boolean or timestamp_millis`,
	} {
		if !strings.Contains(errs.Error(), w) {
			t.Errorf("errors do not contain %q:\n%v", w, errs)
		}
	}

	s = validS3()
	s.Prefix = "!{partitionKeyFromQuery:event_type}/"
	errs = s3Problems("sinks[0].s3", s)
	for _, w := range []string{
		`sinks[0].s3.prefix: "!{partitionKeyFromQuery:event_type}/" is not a valid prefix: expression !{partitionKeyFromQuery:event_type}: partition keys need dynamic_partitioning.enabled`,
		"sinks[0].s3.error_output_prefix: missing: required when the prefix has expressions or dynamic partitioning is enabled",
	} {
		if !strings.Contains(errs.Error(), w) {
			t.Errorf("errors do not contain %q:\n%v", w, errs)
		}
	}
}

// The example decodes without unknown keys, passes the rules (it is a whole, valid sink), and
// shows every key of the s3 section, optional sections included.
func TestS3Example(t *testing.T) {
	got, problems, err := decode(LoadOptions{Path: s3Example, Environ: noEnv})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode %s: %v %v", s3Example, err, problems)
	}
	if len(got.Sinks) != 1 || got.Sinks[0].Type != "s3" || got.Sinks[0].S3 == nil {
		t.Fatalf("sinks = %+v, want one s3 sink", got.Sinks)
	}
	s := *got.Sinks[0].S3
	if errs := s3Problems("sinks[0].s3", s); len(errs) > 0 {
		t.Errorf("the example does not pass the rules:\n%v", errs)
	}
	if s.DynamicPartitioning == nil || !s.DynamicPartitioning.Enabled || s.DataFormatConversion == nil {
		t.Errorf("the example does not show dynamic partitioning and Parquet: %+v", s)
	}

	b, err := os.ReadFile(s3Example)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var inFile, inType []string
	rawKeys(raw, "", &inFile)
	typeKeys(reflect.TypeFor[Config](), "", &inType)
	inType = slices.DeleteFunc(inType, func(k string) bool { return !strings.HasPrefix(k, "sinks[].s3.") })
	inFile = slices.DeleteFunc(inFile, func(k string) bool { return !strings.HasPrefix(k, "sinks[].s3.") })
	slices.Sort(inFile)
	slices.Sort(inType)
	if !slices.Equal(inFile, inType) {
		t.Errorf("%s shows keys %v; the s3 section has %v", s3Example, inFile, inType)
	}
}

// The optional sections are nil unless configured, so S3Sink stays comparable and the defaults
// (and the main example) have neither.
func TestS3OptionalSectionsDefaultToNone(t *testing.T) {
	d := S3Defaults()
	if d.DynamicPartitioning != nil || d.DataFormatConversion != nil {
		t.Fatalf("S3Defaults() = %+v, want no optional sections", d)
	}
	dp := &DynamicPartitioning{}
	if dp.ActivePartitions() != 500 || dp.BufferedMBs() != 256 {
		t.Fatalf("zero caps = %d, %d; want 500 and 256", dp.ActivePartitions(), dp.BufferedMBs())
	}
	dp = &DynamicPartitioning{MaxActivePartitions: 7, MaxBufferedMBs: 9}
	if dp.ActivePartitions() != 7 || dp.BufferedMBs() != 9 {
		t.Fatalf("caps = %d, %d; want 7 and 9", dp.ActivePartitions(), dp.BufferedMBs())
	}
}

func TestS3FromEnvironment(t *testing.T) {
	env := func() []string {
		return []string{
			"SHARDHOSE_STREAM__NAME=s",
			"SHARDHOSE_SINKS__0__NAME=lake",
			"SHARDHOSE_SINKS__0__TYPE=s3",
			"SHARDHOSE_SINKS__0__S3__BUCKET=lake-bucket",
			"SHARDHOSE_SINKS__0__S3__COMPRESSION=ZSTD",
			"SHARDHOSE_SINKS__0__S3__PREFIX=t=!{partitionKeyFromQuery:event_type}/",
			"SHARDHOSE_SINKS__0__S3__ERROR_OUTPUT_PREFIX=e/!{firehose:error-output-type}/",
			"SHARDHOSE_SINKS__0__S3__DYNAMIC_PARTITIONING__ENABLED=true",
			"SHARDHOSE_SINKS__0__S3__DYNAMIC_PARTITIONING__QUERIES__EVENT_TYPE=.event_type",
		}
	}
	got, err := Load(LoadOptions{Environ: env})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	s := got.Sinks[0].S3
	if s.Compression != "ZSTD" || s.DynamicPartitioning == nil || !s.DynamicPartitioning.Enabled ||
		s.DynamicPartitioning.Queries["event_type"] != ".event_type" {
		t.Fatalf("sinks[0].s3 = %+v (dynamic partitioning %+v)", s, s.DynamicPartitioning)
	}
}

// A Parquet schema comes from a file as a list of columns.
func TestS3SchemaFromFile(t *testing.T) {
	path := writeFile(t, `
stream: {name: s}
sinks:
  - name: lake
    type: s3
    s3:
      bucket: lake-bucket
      compression: UNCOMPRESSED
      buffering_hints: {size_in_mbs: 128}
      data_format_conversion:
        output_format: PARQUET
        schema:
          - {name: id, type: int64, required: true}
          - {name: at, type: timestamp_millis}
`)
	cfg, err := Load(LoadOptions{Path: path, Environ: noEnv})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &DataFormatConversion{OutputFormat: "PARQUET", Schema: []SchemaColumn{
		{Name: "id", Type: "int64", Required: true}, {Name: "at", Type: "timestamp_millis"},
	}}
	if got := cfg.Sinks[0].S3.DataFormatConversion; !reflect.DeepEqual(got, want) {
		t.Fatalf("data_format_conversion = %+v, want %+v", got, want)
	}
}

// An exactly-once sink needs one lane per shard: parallelization_factor above 1 is refused,
// naming the sink.
func TestExactlyOnceRefusesParallelLanes(t *testing.T) {
	eo := validS3()
	eo.Delivery = DeliveryExactlyOnce
	v := &checker{seen: map[string]bool{}}
	v.exactlyOnceNeedsOrder(Processing{ParallelizationFactor: 4}, []Sink{{Name: "plain", Type: "s3", S3: ptr(validS3())}, {Name: "lake", Type: "s3", S3: &eo}})
	if len(v.errs) != 1 || v.errs[0].Key != "processing.parallelization_factor" || !strings.Contains(v.errs[0].Error(), "sinks[1] (lake)") {
		t.Errorf("problems: %v", v.errs)
	}
	v = &checker{seen: map[string]bool{}}
	v.exactlyOnceNeedsOrder(Processing{ParallelizationFactor: 1}, []Sink{{Name: "lake", Type: "s3", S3: &eo}})
	if len(v.errs) != 0 {
		t.Errorf("factor 1: %v", v.errs)
	}
}

// An exactly-once sink behind a handler that calls out (lambda, http) is refused, naming the
// sink's key and the handler; local handlers, or an at-least-once sink, are fine.
func TestExactlyOnceRefusesHandlersThatCallOut(t *testing.T) {
	eo := validS3()
	eo.Delivery = DeliveryExactlyOnce
	for _, tc := range []struct {
		name     string
		handlers []string
		s3       S3Sink
		refused  string
	}{
		{"lambda before exactly_once", []string{"json", "lambda"}, eo, "processing.handlers[1] (type lambda)"},
		{"http before exactly_once", []string{"http"}, eo, "processing.handlers[0] (type http)"},
		{"local handlers", []string{"json", "filter", "enrich"}, eo, ""},
		{"at_least_once", []string{"lambda"}, validS3(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Processing
			for _, h := range tc.handlers {
				p.Handlers = append(p.Handlers, ProcessingHandler{Type: h})
			}
			v := &checker{seen: map[string]bool{}}
			v.exactlyOnceNeedsLocalHandlers(p, []Sink{{Name: "lake", Type: "s3", S3: &tc.s3}})
			if tc.refused == "" {
				if len(v.errs) != 0 {
					t.Errorf("refused: %v", v.errs)
				}
				return
			}
			if len(v.errs) != 1 || v.errs[0].Key != "sinks[0].s3.delivery" || !strings.Contains(v.errs[0].Error(), tc.refused) {
				t.Errorf("problems: %v, want one at sinks[0].s3.delivery naming %s", v.errs, tc.refused)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

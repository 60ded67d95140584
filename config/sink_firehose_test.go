package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
)

const firehoseExample = "../configs/examples/sink_firehose.yaml"

// firehoseProblems runs the firehose section's rules on s at key p and returns the problems.
func firehoseProblems(p string, s FirehoseSink) Errors {
	v := &checker{seen: map[string]bool{}}
	v.sinkFirehose(p, s)
	return v.errs
}

func validFirehose() FirehoseSink {
	s := FirehoseDefaults()
	s.DeliveryStream = "orders"
	return s
}

func TestFirehoseDefaults(t *testing.T) {
	d := FirehoseDefaults()
	want := FirehoseSink{MaxInFlight: 4}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("FirehoseDefaults() = %+v, want %+v", d, want)
	}
}

func TestFirehoseRules(t *testing.T) {
	const p = "sinks[0].firehose"
	const arn = "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders"
	rules := []struct {
		name string
		set  func(*FirehoseSink)
		key  string // "" when the section must stay valid
	}{
		{"defaults with a name", func(*FirehoseSink) {}, ""},
		{"no name, no arn", func(s *FirehoseSink) { s.DeliveryStream = "" }, p + ".delivery_stream"},
		{"arn only", func(s *FirehoseSink) { s.DeliveryStream, s.DeliveryStreamARN = "", arn }, ""},
		{"arn and name agree", func(s *FirehoseSink) { s.DeliveryStreamARN = arn }, ""},
		{"arn and name disagree", func(s *FirehoseSink) { s.DeliveryStream = "other"; s.DeliveryStreamARN = arn }, p + ".delivery_stream"},
		{"arn of a kinesis stream", func(s *FirehoseSink) {
			s.DeliveryStreamARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
		}, p + ".delivery_stream_arn"},
		{"arn with a short account", func(s *FirehoseSink) {
			s.DeliveryStreamARN = "arn:aws:firehose:us-east-1:1234:deliverystream/orders"
		}, p + ".delivery_stream_arn"},
		{"name 64", func(s *FirehoseSink) { s.DeliveryStream = strings.Repeat("a", 64) }, ""},
		{"name 65", func(s *FirehoseSink) { s.DeliveryStream = strings.Repeat("a", 65) }, p + ".delivery_stream"},
		{"name with a slash", func(s *FirehoseSink) { s.DeliveryStream = "a/b" }, p + ".delivery_stream"},
		{"interval -1", func(s *FirehoseSink) { s.BufferingHints.IntervalInSeconds = -1 }, p + ".buffering_hints.interval_in_seconds"},
		{"interval 900", func(s *FirehoseSink) { s.BufferingHints.IntervalInSeconds = 900 }, ""},
		{"interval 901", func(s *FirehoseSink) { s.BufferingHints.IntervalInSeconds = 901 }, p + ".buffering_hints.interval_in_seconds"},
		{"in flight 0", func(s *FirehoseSink) { s.MaxInFlight = 0 }, p + ".max_in_flight"},
		{"in flight 1", func(s *FirehoseSink) { s.MaxInFlight = 1 }, ""},
		{"in flight 64", func(s *FirehoseSink) { s.MaxInFlight = 64 }, ""},
		{"in flight 65", func(s *FirehoseSink) { s.MaxInFlight = 65 }, p + ".max_in_flight"},
		{"retry duration -1", func(s *FirehoseSink) { s.RetryDurationInSeconds = -1 }, p + ".retry_duration_in_seconds"},
		{"retry duration without backup", func(s *FirehoseSink) { s.RetryDurationInSeconds = 300 }, p + ".s3_backup.bucket"},
		{"retry duration with backup", func(s *FirehoseSink) {
			s.RetryDurationInSeconds, s.S3Backup.Bucket = 7200, "backup-bucket"
		}, ""},
		{"retry duration 7201", func(s *FirehoseSink) {
			s.RetryDurationInSeconds, s.S3Backup.Bucket = 7201, "backup-bucket"
		}, p + ".retry_duration_in_seconds"},
		{"backup without retry duration", func(s *FirehoseSink) { s.S3Backup.Bucket = "backup-bucket" }, ""},
		{"backup bucket upper case", func(s *FirehoseSink) { s.S3Backup.Bucket = "Backup" }, p + ".s3_backup.bucket"},
		{"backup prefix without bucket", func(s *FirehoseSink) { s.S3Backup.Prefix = "failed/" }, p + ".s3_backup.bucket"},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			s := validFirehose()
			r.set(&s)
			errs := firehoseProblems(p, s)
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

func TestFirehoseMessages(t *testing.T) {
	s := validFirehose()
	s.RetryDurationInSeconds = 300
	s.MaxInFlight = 0
	errs := firehoseProblems("sinks[2].firehose", s)
	for _, w := range []string{
		"sinks[2].firehose.max_in_flight: 0 is out of range: allowed 1 to 64",
		"sinks[2].firehose.s3_backup.bucket: missing: retry_duration_in_seconds is 300, after which refused records go to the S3 backup",
	} {
		if !strings.Contains(errs.Error(), w) {
			t.Errorf("errors do not contain %q:\n%v", w, errs)
		}
	}
}

func TestParseDeliveryStreamARN(t *testing.T) {
	got, err := ParseDeliveryStreamARN("arn:aws-cn:firehose:cn-north-1:123456789012:deliverystream/a.b_c-D")
	if err != nil || got != (DeliveryStreamARN{"aws-cn", "cn-north-1", "123456789012", "a.b_c-D"}) {
		t.Fatalf("ParseDeliveryStreamARN = %+v, %v", got, err)
	}
	if _, err := ParseDeliveryStreamARN("arn:aws:firehose:us-east-1:123456789012:deliverystream/" + strings.Repeat("x", 65)); err == nil {
		t.Fatal("a 65-character name parsed")
	}
	s := FirehoseSink{DeliveryStreamARN: "arn:aws:firehose:us-east-1:123456789012:deliverystream/from-arn"}
	if n := s.DeliveryStreamName(); n != "from-arn" {
		t.Errorf("DeliveryStreamName() = %q", n)
	}
	s.DeliveryStream = "named"
	if n := s.DeliveryStreamName(); n != "named" {
		t.Errorf("DeliveryStreamName() = %q", n)
	}
}

// The example snippet decodes onto the defaults without unknown keys, shows every key, holds the
// defaults, and passes the section's rules.
func TestFirehoseExample(t *testing.T) {
	got, problems, err := decode(LoadOptions{Path: firehoseExample, Environ: noEnv})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode %s: %v %v", firehoseExample, err, problems)
	}
	if len(got.Sinks) != 1 || got.Sinks[0].Type != "firehose" || got.Sinks[0].Firehose == nil {
		t.Fatalf("sinks = %+v, want one firehose sink", got.Sinks)
	}
	want := FirehoseDefaults()
	want.DeliveryStream = got.Sinks[0].Firehose.DeliveryStream
	if *got.Sinks[0].Firehose != want {
		t.Errorf("the example's values differ from the defaults:\n got %+v\nwant %+v", *got.Sinks[0].Firehose, want)
	}
	if errs := firehoseProblems("sinks[0].firehose", *got.Sinks[0].Firehose); len(errs) > 0 {
		t.Errorf("the example does not pass the rules:\n%v", errs)
	}
	assertSnippetKeys(t, firehoseExample, "firehose", reflect.TypeFor[FirehoseSink]())
}

func TestFirehoseFromEnvironment(t *testing.T) {
	env := func() []string {
		return []string{
			"SHARDHOSE_SINKS__0__NAME=fh",
			"SHARDHOSE_SINKS__0__TYPE=firehose",
			"SHARDHOSE_SINKS__0__FIREHOSE__DELIVERY_STREAM=orders",
			"SHARDHOSE_SINKS__0__FIREHOSE__BUFFERING_HINTS__INTERVAL_IN_SECONDS=60",
		}
	}
	got, problems, err := decode(LoadOptions{Environ: env})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode: %v %v", err, problems)
	}
	want := FirehoseDefaults()
	want.DeliveryStream = "orders"
	want.BufferingHints.IntervalInSeconds = 60
	if len(got.Sinks) != 1 || got.Sinks[0].Firehose == nil || *got.Sinks[0].Firehose != want {
		t.Fatalf("sinks = %+v, want one firehose section %+v", got.Sinks, want)
	}
}

// assertSnippetKeys checks that the first sink of the example at path shows every key of the
// section (of type typ) and nothing else.
func assertSnippetKeys(t *testing.T, path, section string, typ reflect.Type) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := raw["sinks"].([]any)
	if len(list) == 0 {
		t.Fatalf("%s has no sinks", path)
	}
	entry, _ := list[0].(map[string]any)
	var inFile, inType []string
	rawKeys(entry[section], "", &inFile)
	typeKeys(typ, "", &inType)
	slices.Sort(inFile)
	slices.Sort(inType)
	if !slices.Equal(inFile, inType) {
		t.Errorf("%s shows keys %v; the %s section has %v", path, inFile, section, inType)
	}
}

package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

const (
	deadLetterExample = "../configs/examples/dead_letter.yaml"
	testQueueURL      = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
)

// withDeadLetter returns a valid config whose dead_letter section is d.
func withDeadLetter(d DeadLetter) Config {
	c := valid()
	c.DeadLetter = d
	return c
}

func overflowIn(bucket string) DeadLetterS3 {
	return DeadLetterS3{Bucket: bucket, Prefix: "dead-letters/records/"}
}

func TestDeadLetterRules(t *testing.T) {
	def := DeadLetterDefaults()
	sqsOK := DeadLetter{Type: "sqs", SQS: DeadLetterSQS{QueueURL: testQueueURL}, Overflow: overflowIn("dlq-bucket")}
	cases := []struct {
		name string
		d    DeadLetter
		keys []string // nil: valid
	}{
		{"none", DeadLetter{}, nil},
		{"none with defaults", def, nil},
		{"unknown type", DeadLetter{Type: "kafka"}, []string{"dead_letter.type"}},
		{"type in capitals", DeadLetter{Type: "SQS"}, []string{"dead_letter.type"}},

		{"sqs", sqsOK, nil},
		{"sqs on top of the defaults", func() DeadLetter {
			d := def
			d.Type = "sqs"
			d.SQS = sqsOK.SQS
			d.Overflow.Bucket = "dlq-bucket"
			return d
		}(), nil},
		{"sqs local endpoint", DeadLetter{Type: "sqs", SQS: DeadLetterSQS{QueueURL: "http://127.0.0.1:4566/000000000000/dlq"}, Overflow: overflowIn("dlq-bucket")}, nil},
		{"sqs fifo", DeadLetter{Type: "sqs", SQS: DeadLetterSQS{QueueURL: testQueueURL + ".fifo"}, Overflow: overflowIn("dlq-bucket")}, nil},
		{"sqs alone", DeadLetter{Type: "sqs"}, []string{"dead_letter.sqs.queue_url", "dead_letter.overflow.bucket"}},
		{"sqs without overflow", DeadLetter{Type: "sqs", SQS: sqsOK.SQS}, []string{"dead_letter.overflow.bucket"}},
		{"sqs url without scheme", DeadLetter{Type: "sqs", SQS: DeadLetterSQS{QueueURL: "sqs.us-east-1.amazonaws.com/1/dlq"}, Overflow: overflowIn("b-1")}, []string{"dead_letter.sqs.queue_url"}},
		{"sqs url with query", DeadLetter{Type: "sqs", SQS: DeadLetterSQS{QueueURL: testQueueURL + "?x=1"}, Overflow: overflowIn("b-1")}, []string{"dead_letter.sqs.queue_url"}},
		{"sqs url without queue name", DeadLetter{Type: "sqs", SQS: DeadLetterSQS{QueueURL: "https://sqs.us-east-1.amazonaws.com/"}, Overflow: overflowIn("b-1")}, []string{"dead_letter.sqs.queue_url"}},
		{"sqs with an s3 section too", func() DeadLetter { d := sqsOK; d.S3 = DeadLetterS3{Bucket: "other"}; return d }(), []string{"dead_letter.s3"}},
		{"sqs with a file section too", func() DeadLetter { d := sqsOK; d.File.Path = "x.jsonl"; return d }(), []string{"dead_letter.file"}},
		{"overflow bucket upper case", func() DeadLetter { d := sqsOK; d.Overflow.Bucket = "Bucket"; return d }(), []string{"dead_letter.overflow.bucket"}},
		{"overflow prefix with leading slash", func() DeadLetter { d := sqsOK; d.Overflow.Prefix = "/x/"; return d }(), []string{"dead_letter.overflow.prefix"}},
		{"overflow prefix 512", func() DeadLetter { d := sqsOK; d.Overflow.Prefix = strings.Repeat("p", 512); return d }(), nil},
		{"overflow prefix 513", func() DeadLetter { d := sqsOK; d.Overflow.Prefix = strings.Repeat("p", 513); return d }(), []string{"dead_letter.overflow.prefix"}},

		{"sns", DeadLetter{Type: "sns", SNS: DeadLetterSNS{TopicARN: "arn:aws:sns:us-east-1:123456789012:dlq"}, Overflow: overflowIn("b-1")}, nil},
		{"sns fifo", DeadLetter{Type: "sns", SNS: DeadLetterSNS{TopicARN: "arn:aws:sns:us-east-1:123456789012:dlq.fifo"}, Overflow: overflowIn("b-1")}, nil},
		{"sns missing", DeadLetter{Type: "sns", Overflow: overflowIn("b-1")}, []string{"dead_letter.sns.topic_arn"}},
		{"sns queue arn", DeadLetter{Type: "sns", SNS: DeadLetterSNS{TopicARN: "arn:aws:sqs:us-east-1:123456789012:dlq"}, Overflow: overflowIn("b-1")}, []string{"dead_letter.sns.topic_arn"}},
		{"sns short account", DeadLetter{Type: "sns", SNS: DeadLetterSNS{TopicARN: "arn:aws:sns:us-east-1:1234:dlq"}, Overflow: overflowIn("b-1")}, []string{"dead_letter.sns.topic_arn"}},

		{"s3", DeadLetter{Type: "s3", S3: DeadLetterS3{Bucket: "dlq-bucket", Prefix: "dead-letters/"}}, nil},
		{"s3 empty prefix", DeadLetter{Type: "s3", S3: DeadLetterS3{Bucket: "dlq-bucket"}}, nil},
		{"s3 missing bucket", DeadLetter{Type: "s3"}, []string{"dead_letter.s3.bucket"}},
		{"s3 with overflow", DeadLetter{Type: "s3", S3: DeadLetterS3{Bucket: "dlq-bucket"}, Overflow: overflowIn("other")}, []string{"dead_letter.overflow"}},
		{"s3 with default overflow prefix", DeadLetter{Type: "s3", S3: DeadLetterS3{Bucket: "dlq-bucket"}, Overflow: def.Overflow}, nil},

		{"kinesis by name", DeadLetter{Type: "kinesis", Kinesis: DeadLetterKinesis{Stream: "dlq"}, Overflow: overflowIn("b-1")}, nil},
		{"kinesis by arn", DeadLetter{Type: "kinesis", Kinesis: DeadLetterKinesis{Stream: "arn:aws:kinesis:us-east-1:123456789012:stream/dlq"}, Overflow: overflowIn("b-1")}, nil},
		{"kinesis bad arn", DeadLetter{Type: "kinesis", Kinesis: DeadLetterKinesis{Stream: "arn:aws:kinesis:us-east-1:1:stream/dlq"}, Overflow: overflowIn("b-1")}, []string{"dead_letter.kinesis.stream"}},
		{"kinesis bad name", DeadLetter{Type: "kinesis", Kinesis: DeadLetterKinesis{Stream: "a b"}, Overflow: overflowIn("b-1")}, []string{"dead_letter.kinesis.stream"}},
		{"kinesis missing everything", DeadLetter{Type: "kinesis"}, []string{"dead_letter.kinesis.stream", "dead_letter.overflow.bucket"}},

		{"file", DeadLetter{Type: "file", File: DeadLetterFile{Path: "./dl.jsonl"}}, nil},
		{"file with default path", DeadLetter{Type: "file", File: def.File}, nil},
		{"file without path", DeadLetter{Type: "file"}, []string{"dead_letter.file.path"}},
		{"file path blank", DeadLetter{Type: "file", File: DeadLetterFile{Path: "  "}}, []string{"dead_letter.file.path"}},

		{"none but a section set", DeadLetter{SQS: DeadLetterSQS{QueueURL: testQueueURL}}, []string{"dead_letter.sqs"}},
		{"none but overflow set", DeadLetter{Overflow: overflowIn("b-1")}, []string{"dead_letter.overflow"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := withDeadLetter(tc.d)
			err := c.Validate()
			if tc.keys == nil {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			errs := asErrors(t, err)
			got := keysOf(errs) // sorted
			want := slices.Sorted(slices.Values(tc.keys))
			if !slices.Equal(got, want) {
				t.Fatalf("problems for %v, want exactly %v:\n%v", got, want, err)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Error(), e.Key+": ") || e.Problem == "" {
					t.Errorf("message %q does not name its key and say what is wrong", e.Error())
				}
			}
		})
	}
}

func TestDeadLetterMessages(t *testing.T) {
	c := withDeadLetter(DeadLetter{Type: "sqs", SQS: DeadLetterSQS{QueueURL: "ftp://x/y"}})
	err := c.Validate()
	want := []string{
		`dead_letter.sqs.queue_url: "ftp://x/y" is not an SQS queue URL: want https://sqs.REGION.amazonaws.com/ACCOUNT/NAME (or an emulator's http://host:port/ACCOUNT/NAME)`,
		`dead_letter.overflow.bucket: missing: a sqs dead-letter destination needs an S3 location for the records of dead letters over its size limit`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	c = withDeadLetter(DeadLetter{Type: "kafka"})
	if got, want := c.Validate().Error(), `dead_letter.type: "kafka" is not allowed: use sqs, sns, s3, kinesis or file, or "" for none`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}

	c = withDeadLetter(DeadLetter{Type: "s3", S3: DeadLetterS3{Bucket: "b-1"}, SNS: DeadLetterSNS{TopicARN: "arn:aws:sns:us-east-1:123456789012:t"}})
	if got, want := c.Validate().Error(), `dead_letter.sns: is set but dead_letter.type is s3: remove it or change the type`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// The example snippet, added to a minimal file, loads as written.
func TestDeadLetterExampleLoads(t *testing.T) {
	snippet, err := os.ReadFile(deadLetterExample)
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, minimalFile+"\n"+string(snippet))
	cfg, err := Load(LoadOptions{Path: p, Environ: noEnv})
	if err != nil {
		t.Fatalf("Load(minimal file + %s):\n%v", deadLetterExample, err)
	}
	want := DeadLetter{
		Type:     "sqs",
		SQS:      DeadLetterSQS{QueueURL: "https://sqs.us-east-1.amazonaws.com/123456789012/shardhose-dead-letters"},
		S3:       DeadLetterDefaults().S3,
		File:     DeadLetterDefaults().File,
		Overflow: DeadLetterS3{Bucket: "my-dead-letter-bucket", Prefix: "dead-letters/records/"},
	}
	if cfg.DeadLetter != want {
		t.Errorf("dead_letter = %+v, want %+v", cfg.DeadLetter, want)
	}
}

// Every key of the section can be set from the environment, and unknown keys are refused.
func TestDeadLetterFromEnvironment(t *testing.T) {
	p := writeFile(t, minimalFile)
	cfg, err := Load(LoadOptions{Path: p, Environ: envOf(
		"SHARDHOSE_DEAD_LETTER__TYPE=kinesis",
		"SHARDHOSE_DEAD_LETTER__KINESIS__STREAM=dlq-stream",
		"SHARDHOSE_DEAD_LETTER__OVERFLOW__BUCKET=dlq-bucket",
		"SHARDHOSE_DEAD_LETTER__OVERFLOW__PREFIX=over/",
	)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	d := cfg.DeadLetter
	if d.Type != "kinesis" || d.Kinesis.Stream != "dlq-stream" || d.Overflow != (DeadLetterS3{Bucket: "dlq-bucket", Prefix: "over/"}) {
		t.Errorf("dead_letter = %+v", d)
	}

	p = writeFile(t, minimalFile+"dead_letter:\n  type: sqs\n  sqs:\n    queue: x\n")
	_, err = Load(LoadOptions{Path: p, Environ: noEnv})
	keys := keysOf(asErrors(t, err))
	if !slices.Contains(keys, "dead_letter.sqs.queue") {
		t.Errorf("unknown key dead_letter.sqs.queue not reported; problems: %v", keys)
	}
}

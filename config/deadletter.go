package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/shardhose/shardhose/internal/lazyregexp"
)

// DeadLetter is where batches given up on go (Lambda's on-failure destination). Type picks the
// destination and the section of the same name configures it; an empty Type means none is
// configured, and a failed batch then has nowhere to go (the processing stage decides what that
// means). Only the section named by Type is used; Validate reports another section that is set.
//
// SQS, SNS and Kinesis cap a message's size (256 KiB, 256 KiB, 1 MiB), which a batch of records
// easily exceeds: for those types Overflow names the S3 location where the records of a dead
// letter that does not fit are written, the message then pointing at the object.
type DeadLetter struct {
	// Type is sqs, sns, s3, kinesis, file, or "" for none.
	Type    string            `koanf:"type"`
	SQS     DeadLetterSQS     `koanf:"sqs"`
	SNS     DeadLetterSNS     `koanf:"sns"`
	S3      DeadLetterS3      `koanf:"s3"`
	Kinesis DeadLetterKinesis `koanf:"kinesis"`
	File    DeadLetterFile    `koanf:"file"`
	// Overflow is required for sqs, sns and kinesis and not used by the other types.
	Overflow DeadLetterS3 `koanf:"overflow"`
}

// DeadLetterSQS sends each dead letter as one SQS message.
type DeadLetterSQS struct {
	// QueueURL is the queue's URL, e.g. https://sqs.us-east-1.amazonaws.com/123456789012/dlq. A
	// FIFO queue (.fifo) gets the source shard as message group and the dead letter's id as
	// deduplication id.
	QueueURL string `koanf:"queue_url"`
}

// DeadLetterSNS publishes each dead letter as one SNS message.
type DeadLetterSNS struct {
	// TopicARN is the topic's ARN, e.g. arn:aws:sns:us-east-1:123456789012:dlq.
	TopicARN string `koanf:"topic_arn"`
}

// DeadLetterS3 is an S3 location: a bucket and a key prefix. As the s3 destination it receives
// one object per dead letter; as overflow, the records of dead letters too large for their message.
type DeadLetterS3 struct {
	Bucket string `koanf:"bucket"`
	// Prefix is put before every key, which then continues YYYY/MM/dd/HH/ (UTC) and a name of
	// the source shard, the first sequence number and the dead letter's id.
	Prefix string `koanf:"prefix"`
}

// DeadLetterKinesis puts each dead letter as one record into a Kinesis stream.
type DeadLetterKinesis struct {
	// Stream is the stream's name or ARN. It must not be the stream being consumed.
	Stream string `koanf:"stream"`
}

// DeadLetterFile appends each dead letter as one JSON line to a local file, synced to disk
// before the write counts as done. Meant for development.
type DeadLetterFile struct {
	Path string `koanf:"path"`
}

// DeadLetterDefaults holds the defaults of the dead_letter keys: no destination, and prefixes
// and a file name ready for when one is chosen.
func DeadLetterDefaults() DeadLetter {
	return DeadLetter{
		S3:       DeadLetterS3{Prefix: "dead-letters/"},
		File:     DeadLetterFile{Path: "dead-letters.jsonl"},
		Overflow: DeadLetterS3{Prefix: "dead-letters/records/"},
	}
}

// deadLetterTypes are the accepted values of dead_letter.type; "" (none) is accepted too.
var deadLetterTypes = []string{"sqs", "sns", "s3", "kinesis", "file"}

var (
	snsTopicARNRe = lazyregexp.New(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[a-zA-Z0-9_-]{1,256}(\.fifo)?$`)
	// sqsQueueNameRe is the last path element of a queue URL: 1 to 80 of a-z A-Z 0-9 _ -, plus .fifo.
	sqsQueueNameRe = lazyregexp.New(`^[a-zA-Z0-9_-]{1,80}(\.fifo)?$`)
)

// maxDeadLetterPrefix leaves room in S3's 1,024-byte keys for the date, shard, sequence number
// and id that follow the prefix.
const maxDeadLetterPrefix = 512

func (v *checker) deadLetter(d DeadLetter) {
	const p = "dead_letter"
	if d.Type != "" && !slices.Contains(deadLetterTypes, d.Type) {
		v.add(p+".type", strconv.Quote(d.Type), `is not allowed: use `+list(deadLetterTypes)+`, or "" for none`)
		return
	}
	def := DeadLetterDefaults()
	sections := []struct {
		name string
		set  bool
	}{
		{"sqs", d.SQS != (DeadLetterSQS{})},
		{"sns", d.SNS != (DeadLetterSNS{})},
		{"s3", d.S3 != (DeadLetterS3{}) && d.S3 != def.S3},
		{"kinesis", d.Kinesis != (DeadLetterKinesis{})},
		{"file", d.File != (DeadLetterFile{}) && d.File != def.File},
	}
	for _, s := range sections {
		if s.set && s.name != d.Type {
			if d.Type == "" {
				v.add(p+"."+s.name, "", `is set but dead_letter.type is "" (none): set type to `+s.name+" or remove the section")
			} else {
				v.add(p+"."+s.name, "", fmt.Sprintf("is set but dead_letter.type is %s: remove it or change the type", d.Type))
			}
		}
	}
	overflowSet := d.Overflow != (DeadLetterS3{}) && d.Overflow != def.Overflow
	switch d.Type {
	case "sqs":
		v.deadLetterQueueURL(p+".sqs.queue_url", d.SQS.QueueURL)
	case "sns":
		switch {
		case d.SNS.TopicARN == "":
			v.missing(p+".sns.topic_arn", "name the SNS topic, e.g. arn:aws:sns:us-east-1:123456789012:dead-letters")
		case !snsTopicARNRe.MatchString(d.SNS.TopicARN):
			v.add(p+".sns.topic_arn", strconv.Quote(d.SNS.TopicARN), "is not an SNS topic ARN: want arn:aws:sns:REGION:ACCOUNT:NAME with a 12-digit account")
		}
	case "s3":
		v.deadLetterS3(p+".s3", d.S3, "the bucket that receives one object per dead letter")
	case "kinesis":
		s := d.Kinesis.Stream
		switch {
		case s == "":
			v.missing(p+".kinesis.stream", "name the stream that receives the dead letters (its name or ARN)")
		case strings.HasPrefix(s, "arn:"):
			if _, err := ParseStreamARN(s); err != nil {
				v.add(p+".kinesis.stream", strconv.Quote(s), "is not a Kinesis stream ARN: want arn:aws:kinesis:REGION:ACCOUNT:stream/NAME with a 12-digit account")
			}
		case !streamNameRe.MatchString(s):
			v.add(p+".kinesis.stream", strconv.Quote(s), "is not a stream name: 1 to 128 characters from a-z, A-Z, 0-9, _ . -")
		}
	case "file":
		if strings.TrimSpace(d.File.Path) == "" {
			v.missing(p+".file.path", "name the file the dead letters are appended to, e.g. ./dead-letters.jsonl")
		}
	}
	switch d.Type {
	case "sqs", "sns", "kinesis":
		v.deadLetterS3(p+".overflow", d.Overflow, fmt.Sprintf(
			"a %s dead-letter destination needs an S3 location for the records of dead letters over its size limit", d.Type))
	default:
		if overflowSet {
			what := "no destination is configured"
			if d.Type != "" {
				what = "type " + d.Type + " has no size limit to overflow"
			}
			v.add(p+".overflow", "", "is set but "+what+": it is used only with sqs, sns and kinesis; remove it")
		}
	}
}

func (v *checker) deadLetterQueueURL(key, raw string) {
	if raw == "" {
		v.missing(key, "set the queue's URL, e.g. https://sqs.us-east-1.amazonaws.com/123456789012/dead-letters")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		!sqsQueueNameRe.MatchString(u.Path[strings.LastIndex(u.Path, "/")+1:]) {
		v.add(key, strconv.Quote(raw), "is not an SQS queue URL: want https://sqs.REGION.amazonaws.com/ACCOUNT/NAME (or an emulator's http://host:port/ACCOUNT/NAME)")
	}
}

// deadLetterS3 checks an S3 location; need says what it is for when the bucket is missing.
func (v *checker) deadLetterS3(p string, s DeadLetterS3, need string) {
	switch {
	case s.Bucket == "":
		v.missing(p+".bucket", need)
	case !bucketNameRe.MatchString(s.Bucket):
		v.add(p+".bucket", strconv.Quote(s.Bucket), "is not an S3 bucket name: 3 to 63 characters from a-z, 0-9, . - starting and ending with a letter or digit")
	}
	switch {
	case strings.HasPrefix(s.Prefix, "/"):
		v.add(p+".prefix", strconv.Quote(s.Prefix), `starts with "/": S3 keys do not, and the object would land under an empty folder name`)
	case len(s.Prefix) > maxDeadLetterPrefix:
		v.add(p+".prefix", strconv.Quote(s.Prefix[:32]+"…"), fmt.Sprintf("is %d bytes long: allowed up to %d, to leave room in S3's 1024-byte keys", len(s.Prefix), maxDeadLetterPrefix))
	}
}

package config

import (
	"fmt"
	"strconv"

	"github.com/shardhose/shardhose/internal/lazyregexp"
)

// FirehoseSink configures a sink of type firehose: records are forwarded to an Amazon Data
// Firehose delivery stream (of type DirectPut) with PutRecordBatch. Firehose is the durable buffer
// here, so by default a record is retried until Firehose accepts it; with retry_duration_in_seconds
// set, records still refused after that long go to the S3 backup instead.
type FirehoseSink struct {
	// DeliveryStream is the delivery stream's name: 1 to 64 of a-z A-Z 0-9 _ . -
	// Set it, DeliveryStreamARN, or both (they must agree).
	DeliveryStream string `koanf:"delivery_stream"`
	// DeliveryStreamARN is arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME. PutRecordBatch
	// takes only the name; the ARN's region and account are checked at start-up (Check) against
	// the stream the client reaches.
	DeliveryStreamARN string `koanf:"delivery_stream_arn"`
	// BufferingHints says how long records wait in shardhose before a PutRecordBatch call. A call
	// also goes out as soon as it holds 500 records or 4 MiB, PutRecordBatch's limits.
	BufferingHints FirehoseBufferingHints `koanf:"buffering_hints"`
	// MaxInFlight caps the PutRecordBatch calls (each with its retries) under way at once, 1 to
	// 64. Writes block beyond it, which bounds memory at about (max_in_flight+1) × 4 MiB.
	MaxInFlight int `koanf:"max_in_flight"`
	// RetryDurationInSeconds is how long records Firehose refuses are retried before they go to
	// the S3 backup, 0 to 7,200. 0 retries without end (the sink pauses while Firehose refuses,
	// and nothing is dropped); a positive value requires S3Backup.
	RetryDurationInSeconds int `koanf:"retry_duration_in_seconds"`
	// S3Backup is where records go that cannot be delivered: records over Firehose's 1,000 KiB
	// limit at once, and with RetryDurationInSeconds set, records refused for that long. They are
	// written in Firehose's error-record format under the folder firehose-failed/.
	S3Backup FirehoseS3Backup `koanf:"s3_backup"`
	// AppendNewline puts "\n" after each record's data. Off by default: records reach Firehose
	// exactly as they were read (Firehose's own delimiter option can add one at the destination).
	AppendNewline bool `koanf:"append_newline"`
}

// FirehoseBufferingHints are the firehose sink's buffering hints. Only the interval is
// configurable: the size of a call is fixed by PutRecordBatch's limits.
type FirehoseBufferingHints struct {
	// IntervalInSeconds is the longest a record waits before its batch is sent, 0 to 900. 0 (the
	// default) sends promptly, since the delivery stream buffers by its own hints.
	IntervalInSeconds int `koanf:"interval_in_seconds"`
}

// FirehoseS3Backup names the S3 location for records a firehose sink gives up on. An empty Bucket
// means no backup.
type FirehoseS3Backup struct {
	Bucket string `koanf:"bucket"`
	// Prefix is put before the backup objects' keys (before firehose-failed/).
	Prefix string `koanf:"prefix"`
}

// Firehose's limits that the configuration checks.
const (
	// FirehoseMaxRetryDuration is the longest retry duration Firehose allows (7,200 s).
	FirehoseMaxRetryDuration = 7200
	// FirehoseMaxInterval is the longest buffering interval Firehose allows (900 s).
	FirehoseMaxInterval = 900
)

// FirehoseDefaults are applied to every firehose sink section for keys it leaves out.
func FirehoseDefaults() FirehoseSink {
	return FirehoseSink{
		BufferingHints:         FirehoseBufferingHints{IntervalInSeconds: 0},
		MaxInFlight:            4,
		RetryDurationInSeconds: 0,
	}
}

var (
	deliveryStreamNameRe = lazyregexp.NewBounded(`^[a-zA-Z0-9_.-]+$`, 1, 64)
	deliveryStreamARNRe  = lazyregexp.New(`^arn:(aws[a-z-]*):firehose:([a-z0-9-]+):([0-9]{12}):deliverystream/([a-zA-Z0-9_.-]{1,64})$`)
)

// DeliveryStreamARN is a parsed Firehose delivery stream ARN:
// arn:PARTITION:firehose:REGION:ACCOUNT:deliverystream/NAME.
type DeliveryStreamARN struct {
	Partition string
	Region    string
	Account   string // 12 digits
	Name      string
}

// ParseDeliveryStreamARN parses a Firehose delivery stream ARN, or says what shape was expected.
func ParseDeliveryStreamARN(arn string) (DeliveryStreamARN, error) {
	m := deliveryStreamARNRe.FindStringSubmatch(arn)
	if m == nil {
		return DeliveryStreamARN{}, fmt.Errorf("%q is not a Firehose delivery stream ARN: want arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME", arn)
	}
	return DeliveryStreamARN{Partition: m[1], Region: m[2], Account: m[3], Name: m[4]}, nil
}

// DeliveryStreamName returns the delivery stream's name: DeliveryStream when set, else the name
// inside DeliveryStreamARN, else "" (also when the ARN does not parse; Validate reports that).
func (s FirehoseSink) DeliveryStreamName() string {
	if s.DeliveryStream != "" {
		return s.DeliveryStream
	}
	if a, err := ParseDeliveryStreamARN(s.DeliveryStreamARN); err == nil {
		return a.Name
	}
	return ""
}

func (v *checker) sinkFirehose(p string, s FirehoseSink) {
	switch {
	case s.DeliveryStream == "" && s.DeliveryStreamARN == "":
		v.missing(p+".delivery_stream", "name the Firehose delivery stream (or set delivery_stream_arn)")
	case s.DeliveryStream != "" && !deliveryStreamNameRe.MatchString(s.DeliveryStream):
		v.add(p+".delivery_stream", strconv.Quote(s.DeliveryStream), "is not a delivery stream name: 1 to 64 characters from a-z, A-Z, 0-9, _ . -")
	}
	if s.DeliveryStreamARN != "" {
		a, err := ParseDeliveryStreamARN(s.DeliveryStreamARN)
		switch {
		case err != nil:
			v.add(p+".delivery_stream_arn", strconv.Quote(s.DeliveryStreamARN), "is not a Firehose delivery stream ARN: want arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME with a 12-digit account")
		case s.DeliveryStream != "" && s.DeliveryStream != a.Name:
			v.add(p+".delivery_stream", strconv.Quote(s.DeliveryStream), fmt.Sprintf("differs from the name in delivery_stream_arn (%q): set one of them, or both alike", a.Name))
		}
	}
	v.intRange(p+".buffering_hints.interval_in_seconds", s.BufferingHints.IntervalInSeconds, 0, FirehoseMaxInterval)
	v.intRange(p+".max_in_flight", s.MaxInFlight, 1, 64)
	v.intRange(p+".retry_duration_in_seconds", s.RetryDurationInSeconds, 0, FirehoseMaxRetryDuration)
	b := s.S3Backup
	switch {
	case b.Bucket == "" && s.RetryDurationInSeconds > 0 && !v.bad(p+".retry_duration_in_seconds"):
		v.missing(p+".s3_backup.bucket", fmt.Sprintf(
			"retry_duration_in_seconds is %d, after which refused records go to the S3 backup: name its bucket, or set retry_duration_in_seconds to 0 to retry without end",
			s.RetryDurationInSeconds))
	case b.Bucket == "" && b.Prefix != "":
		v.missing(p+".s3_backup.bucket", "s3_backup.prefix is set but there is no bucket to put it in")
	case b.Bucket != "" && !bucketNameRe.MatchString(b.Bucket):
		v.add(p+".s3_backup.bucket", strconv.Quote(b.Bucket), "is not an S3 bucket name: 3 to 63 characters from a-z, 0-9, . - starting and ending with a letter or digit")
	}
}

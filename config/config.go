// Package config is shardhose's one configuration tree: loaded from a YAML file, then
// SHARDHOSE_* environment variables, then command-line flags (each overriding the last), strict
// about unknown keys, and checked by Validate, which reports every problem at once.
//
// Names follow AWS where an AWS feature is re-created: Lambda's event source mapping settings in
// snake case (batch_size, maximum_retry_attempts, ...), Firehose's buffering hints
// (size_in_mbs, interval_in_seconds). Durations of shardhose's own knobs are Go durations ("10s").
package config

import "time"

// Config is the whole configuration of one shardhose process.
type Config struct {
	AWS        AWS        `koanf:"aws"`
	Stream     Stream     `koanf:"stream"`
	Leases     Leases     `koanf:"leases"`
	Batching   Batching   `koanf:"batching"`
	Processing Processing `koanf:"processing"`
	Sinks      []Sink     `koanf:"sinks"`
	DeadLetter DeadLetter `koanf:"dead_letter"`
	Shutdown   Shutdown   `koanf:"shutdown"`
	Memory     Memory     `koanf:"memory"`
	Log        Log        `koanf:"log"`
	Metrics    Metrics    `koanf:"metrics"`
}

// AWS says where the AWS APIs are and how to sign requests.
type AWS struct {
	Region string `koanf:"region"`
	// Endpoint, if set, serves every service (LocalStack's single port). A per-service endpoint
	// in Endpoints wins over it.
	Endpoint    string      `koanf:"endpoint"`
	Endpoints   Endpoints   `koanf:"endpoints"`
	Credentials Credentials `koanf:"credentials"`
	// S3UsePathStyle addresses buckets as http://host/bucket (needed by most emulators).
	S3UsePathStyle bool `koanf:"s3_use_path_style"`
	// Timeouts bound each attempt of an AWS call, by the kind of call.
	Timeouts Timeouts `koanf:"timeouts"`
}

// Timeouts bound one attempt of an AWS call (one HTTP request and its response), by what the call
// does. An attempt that runs out of time fails with an error naming the key; the caller's own
// retry policy decides what happens next. Lambda Invoke and S3 GetObject (whose bodies stream)
// are not bounded by these: the handler timeout bounds Invoke.
type Timeouts struct {
	// Read: calls that only read (GetRecords, GetShardIterator, ListShards, DescribeStream*,
	// DynamoDB GetItem, Scan, Query, DescribeTable, S3 HeadBucket and ListObjectsV2, SQS
	// ReceiveMessage on top of its long-poll wait).
	Read time.Duration `koanf:"read"`
	// Write: small writes (DynamoDB PutItem, UpdateItem, DeleteItem, CreateTable; SQS
	// SendMessage and DeleteMessage; SNS Publish; S3 multipart create, complete and abort).
	Write time.Duration `koanf:"write"`
	// Upload: calls that send a body of up to 16 MiB (S3 PutObject and UploadPart, Firehose
	// PutRecordBatch, Kinesis PutRecords).
	Upload time.Duration `koanf:"upload"`
}

// Endpoints overrides the endpoint of one service each.
type Endpoints struct {
	Kinesis  string `koanf:"kinesis"`
	DynamoDB string `koanf:"dynamodb"`
	S3       string `koanf:"s3"`
	SQS      string `koanf:"sqs"`
	SNS      string `koanf:"sns"`
	Firehose string `koanf:"firehose"`
	Lambda   string `koanf:"lambda"`
	// CloudWatch is used only by metrics.cloudwatch.
	CloudWatch string `koanf:"cloudwatch"`
}

// Credentials selects the credential source: "default" (the SDK's chain: env, profile, ECS task
// role, instance role) or "static" (the keys below; meant for local emulators).
type Credentials struct {
	Source          string `koanf:"source"`
	AccessKeyID     string `koanf:"access_key_id"`
	SecretAccessKey string `koanf:"secret_access_key"`
	SessionToken    string `koanf:"session_token"`
}

// Stream names the Kinesis stream to consume and where to start on a shard with no checkpoint.
// Name, ARN or both (agreeing) must be set; StreamName returns the name either way.
type Stream struct {
	Name string `koanf:"name"`
	ARN  string `koanf:"arn"`
	// StartingPosition is TRIM_HORIZON, LATEST or AT_TIMESTAMP (Lambda's names).
	StartingPosition string `koanf:"starting_position"`
	// StartingPositionTimestamp is Unix seconds, used with AT_TIMESTAMP.
	StartingPositionTimestamp float64 `koanf:"starting_position_timestamp"`
	// PollInterval is the wait between GetRecords calls on a shard that returned nothing new
	// (Kinesis allows 5 calls per shard per second), MinPollInterval to MaxPollInterval.
	PollInterval time.Duration `koanf:"poll_interval"`
	// MaxRecordsPerRead is GetRecords' Limit (1 to 10,000).
	MaxRecordsPerRead int `koanf:"max_records_per_read"`
	// MaxIdlePollInterval bounds the wait between reads of a shard whose reads keep returning
	// nothing: it doubles from PollInterval up to this, and the first record read resets it
	// (MinPollInterval to MaxPollInterval; at or below PollInterval there is no back-off).
	MaxIdlePollInterval time.Duration `koanf:"max_idle_poll_interval"`
	// ResponseBuffers is how many GetRecords responses the process reads and decodes at once,
	// over all shards (1 to 1,024); each buffer grows to the largest response it has held.
	ResponseBuffers int `koanf:"response_buffers"`
}

// Leases configures the DynamoDB lease table that spreads shards over workers.
type Leases struct {
	Table string `koanf:"table"`
	// WorkerID names this worker in the table; ApplyDerivedDefaults (called by Load) fills an
	// empty one with "<hostname>-<pid>".
	WorkerID string `koanf:"worker_id"`
	// LeaseDuration is how long a lease's counter may stay unchanged before others take it.
	LeaseDuration time.Duration `koanf:"lease_duration"`
	// RenewInterval is how often an owner renews its leases; at most half of LeaseDuration.
	RenewInterval time.Duration `koanf:"renew_interval"`
	// ShardSyncInterval is how often the shard list and the lease table are read again.
	ShardSyncInterval time.Duration `koanf:"shard_sync_interval"`
	// CheckpointInterval is the longest a delivered position waits before it is written.
	CheckpointInterval time.Duration `koanf:"checkpoint_interval"`
	// MaxLeasesPerWorker caps how many shards one worker holds; 0 = no cap.
	MaxLeasesPerWorker int `koanf:"max_leases_per_worker"`
	// StallTimeout reports a shard that holds undelivered records without progress for this long,
	// writes its checkpoint, releases its lease and reads it again; 0 turns the check off.
	StallTimeout time.Duration `koanf:"stall_timeout"`
	// CreateTable lets the daemon create the table (on-demand capacity) when it does not exist.
	// Turn it off when the table is provisioned elsewhere (CloudFormation, Terraform): the
	// daemon then needs no dynamodb:CreateTable permission and a missing table is a start-up error.
	CreateTable bool `koanf:"create_table"`
}

// Batching follows Lambda's event source mapping: how records are grouped before they are handed on.
type Batching struct {
	BatchSize                      int `koanf:"batch_size"`
	MaximumBatchingWindowInSeconds int `koanf:"maximum_batching_window_in_seconds"`
	// MaxInFlightRecords caps, per shard, the records read but not yet acknowledged by every sink;
	// reading pauses at the cap (the backpressure that bounds memory).
	MaxInFlightRecords int `koanf:"max_in_flight_records"`
}

// Sink is one destination: a name (used in logs and object names) and a type with its section.
// Only the section named by Type is used; S3 is nil when the entry has no s3 section, and when
// it has one, Load starts it from S3Defaults.
//
// Each section's type, defaults and rules live in its own file (sink_<type>.go).
type Sink struct {
	Name       string          `koanf:"name"`
	Type       string          `koanf:"type"`
	S3         *S3Sink         `koanf:"s3"`
	HTTP       *HTTPSink       `koanf:"http"`
	OpenSearch *OpenSearchSink `koanf:"opensearch"`
	Firehose   *FirehoseSink   `koanf:"firehose"`
	File       *FileSink       `koanf:"file"`
}

// S3Sink is a Firehose-style S3 destination. Its optional sections are pointers (nil: not
// configured), so that S3Sink stays comparable.
type S3Sink struct {
	Bucket string `koanf:"bucket"`
	// Prefix is put before every object key, with Firehose's expressions (!{timestamp:...},
	// !{partitionKeyFromQuery:...}, !{partitionKeyFromLambda:...}, !{firehose:random-string});
	// without a timestamp expression !{timestamp:yyyy/MM/dd/HH/} is appended (not with dynamic
	// partitioning). Empty means Firehose's default "YYYY/MM/dd/HH/" (UTC).
	Prefix string `koanf:"prefix"`
	// ErrorOutputPrefix is where records that cannot be written as data go, as Firehose error
	// records; it may use !{firehose:error-output-type} and !{timestamp:...}. Required when Prefix
	// has expressions or dynamic partitioning is enabled.
	ErrorOutputPrefix string `koanf:"error_output_prefix"`
	// Compression is GZIP, SNAPPY (the Snappy framing format), ZSTD or UNCOMPRESSED; it must be
	// UNCOMPRESSED with Parquet output, which compresses its columns.
	Compression    string         `koanf:"compression"`
	BufferingHints BufferingHints `koanf:"buffering_hints"`
	// AppendNewline puts "\n" after each record (Firehose's AppendDelimiterToRecord).
	AppendNewline bool `koanf:"append_newline"`
	// MaxUploads caps the objects being uploaded at once; writes block beyond it.
	MaxUploads int `koanf:"max_uploads"`
	// Retry governs failed PUTs. With a Kinesis source Firehose retries S3 for as long as the
	// stream holds the data, so the default is to retry without end (max_elapsed 0).
	Retry Retry `koanf:"retry"`
	// DynamicPartitioning groups records into one buffer (and object) per partition.
	DynamicPartitioning *DynamicPartitioning `koanf:"dynamic_partitioning"`
	// DataFormatConversion, when set, writes Parquet files instead of records.
	DataFormatConversion *DataFormatConversion `koanf:"data_format_conversion"`
	// Delivery is at_least_once (the default: a crash or a lost lease can write records again)
	// or exactly_once: each shard's records go to objects of that shard only, under keys made
	// from the shard and the position the object starts after, written with S3 conditional
	// writes, and the position each shard is delivered up to is kept in the lease row, so that
	// every record read lands in exactly one object (docs/design.md). It costs one object per
	// shard per buffer instead of one per buffer, and a shard's objects go up one at a time.
	// With dynamic partitioning it also writes one empty manifest object per cut of a shard.
	Delivery string `koanf:"delivery"`
}

// Delivery guarantees of an S3 sink.
const (
	DeliveryAtLeastOnce = "at_least_once"
	DeliveryExactlyOnce = "exactly_once"
)

// ExactlyOnce reports whether the sink delivers every record exactly once.
func (s S3Sink) ExactlyOnce() bool { return s.Delivery == DeliveryExactlyOnce }

// DynamicPartitioning is Firehose's dynamic partitioning with inline jq parsing: each record's
// partition is the values the prefix reads with !{partitionKeyFromQuery:key} (Queries[key] run
// over the record's JSON) and !{partitionKeyFromLambda:key} (the transform's partition keys).
type DynamicPartitioning struct {
	Enabled bool `koanf:"enabled"`
	// Queries maps a partition key name to a jq query; its first result, a string, number or
	// boolean, is the key's value. A query that fails or gives null sends the record to the
	// error output (partitioning-failed).
	Queries map[string]string `koanf:"queries"`
	// MaxActivePartitions caps the partitions buffered or being written at once; records of
	// further partitions go to the error output. 0 means DefaultMaxActivePartitions.
	MaxActivePartitions int `koanf:"max_active_partitions"`
	// MaxBufferedMBs caps the MiB held by the open buffers of all partitions together; a record
	// that would pass it seals the largest buffer first. At least buffering_hints.size_in_mbs;
	// 0 means DefaultMaxBufferedMBs.
	MaxBufferedMBs int `koanf:"max_buffered_mbs"`
}

// Defaults of DynamicPartitioning's caps, used where they are 0 (the section is optional, so
// S3Defaults cannot hold them).
const (
	// DefaultMaxActivePartitions is Firehose's default quota of active partitions.
	DefaultMaxActivePartitions = 500
	// DefaultMaxBufferedMBs bounds the open partition buffers to 256 MiB.
	DefaultMaxBufferedMBs = 256
)

// ActivePartitions returns MaxActivePartitions, or its default when it is 0.
func (d *DynamicPartitioning) ActivePartitions() int {
	if d.MaxActivePartitions == 0 {
		return DefaultMaxActivePartitions
	}
	return d.MaxActivePartitions
}

// BufferedMBs returns MaxBufferedMBs, or its default when it is 0.
func (d *DynamicPartitioning) BufferedMBs() int {
	if d.MaxBufferedMBs == 0 {
		return DefaultMaxBufferedMBs
	}
	return d.MaxBufferedMBs
}

// DataFormatConversion converts JSON records to columnar files, as Firehose's record format
// conversion does (with the schema given here rather than in AWS Glue).
type DataFormatConversion struct {
	// OutputFormat is PARQUET.
	OutputFormat string `koanf:"output_format"`
	// Schema lists the columns; a record's top-level JSON fields map to them by name, and fields
	// not listed are left out.
	Schema []SchemaColumn `koanf:"schema"`
}

// SchemaColumn is one column of a Parquet schema.
type SchemaColumn struct {
	Name string `koanf:"name"`
	// Type is string, int64, double, boolean or timestamp_millis (from an RFC 3339 string or
	// Unix milliseconds).
	Type string `koanf:"type"`
	// Required columns must have a non-null value; a record without one goes to the error
	// output (format-conversion-failed).
	Required bool `koanf:"required"`
}

// BufferingHints are Firehose's: deliver when either is reached.
type BufferingHints struct {
	SizeInMBs         int `koanf:"size_in_mbs"`
	IntervalInSeconds int `koanf:"interval_in_seconds"`
}

// Retry is a backoff policy: initial wait, cap on one wait, and total time (0 = no end).
type Retry struct {
	InitialBackoff time.Duration `koanf:"initial_backoff"`
	MaxBackoff     time.Duration `koanf:"max_backoff"`
	MaxElapsed     time.Duration `koanf:"max_elapsed"`
}

// Shutdown bounds the drain on SIGTERM.
type Shutdown struct {
	// DrainTimeout is how long a stop may take to flush, checkpoint and release leases before the
	// process exits non-zero saying what was left.
	DrainTimeout time.Duration `koanf:"drain_timeout"`
}

// Log selects the log format ("json", "text", or "auto": text on a terminal) and level.
type Log struct {
	Format string `koanf:"format"`
	Level  string `koanf:"level"`
}

// Defaults returns the configuration used for every key a file, the environment and flags leave out.
func Defaults() Config {
	return Config{
		AWS: AWS{
			Region:      "us-east-1",
			Credentials: Credentials{Source: "default"},
			Timeouts:    TimeoutsDefaults(),
		},
		Stream: Stream{
			StartingPosition:    "TRIM_HORIZON",
			PollInterval:        time.Second,
			MaxRecordsPerRead:   10000,
			MaxIdlePollInterval: 5 * time.Second,
			ResponseBuffers:     2,
		},
		Leases: Leases{
			Table:              "shardhose-leases",
			LeaseDuration:      10 * time.Second,
			RenewInterval:      3 * time.Second,
			ShardSyncInterval:  10 * time.Second,
			CheckpointInterval: time.Second,
			StallTimeout:       30 * time.Minute,
			CreateTable:        true,
		},
		Batching: Batching{
			BatchSize:                      100,
			MaximumBatchingWindowInSeconds: 0,
			MaxInFlightRecords:             50000,
		},
		Processing: ProcessingDefaults(),
		DeadLetter: DeadLetterDefaults(),
		Shutdown:   Shutdown{DrainTimeout: 30 * time.Second},
		Log:        Log{Format: "auto", Level: "info"},
		Metrics:    MetricsDefaults(),
	}
}

// Defaults of aws.timeouts and their allowed range.
const (
	DefaultReadTimeout   = 5 * time.Second
	DefaultWriteTimeout  = 5 * time.Second
	DefaultUploadTimeout = 10 * time.Second
	MinAWSTimeout        = 100 * time.Millisecond
	MaxAWSTimeout        = 10 * time.Minute
)

// TimeoutsDefaults returns the default aws.timeouts.
func TimeoutsDefaults() Timeouts {
	return Timeouts{Read: DefaultReadTimeout, Write: DefaultWriteTimeout, Upload: DefaultUploadTimeout}
}

// S3Defaults are applied to every S3 sink section for keys it leaves out.
func S3Defaults() S3Sink {
	return S3Sink{
		Compression:    "GZIP",
		BufferingHints: BufferingHints{SizeInMBs: 5, IntervalInSeconds: 300},
		AppendNewline:  true,
		MaxUploads:     4,
		Retry:          Retry{InitialBackoff: time.Second, MaxBackoff: 2 * time.Minute},
		Delivery:       DeliveryAtLeastOnce,
	}
}

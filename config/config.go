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
	Log        Log        `koanf:"log"`
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

// S3Sink is a Firehose-style S3 destination.
type S3Sink struct {
	Bucket string `koanf:"bucket"`
	// Prefix is put before every object key; empty means Firehose's default "YYYY/MM/dd/HH/" (UTC).
	Prefix string `koanf:"prefix"`
	// ErrorOutputPrefix is where records that cannot be written as data go.
	ErrorOutputPrefix string `koanf:"error_output_prefix"`
	// Compression is GZIP or UNCOMPRESSED.
	Compression    string         `koanf:"compression"`
	BufferingHints BufferingHints `koanf:"buffering_hints"`
	// AppendNewline puts "\n" after each record (Firehose's AppendDelimiterToRecord).
	AppendNewline bool `koanf:"append_newline"`
	// MaxUploads caps the objects being uploaded at once; writes block beyond it.
	MaxUploads int `koanf:"max_uploads"`
	// Retry governs failed PUTs. With a Kinesis source Firehose retries S3 for as long as the
	// stream holds the data, so the default is to retry without end (max_elapsed 0).
	Retry Retry `koanf:"retry"`
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
		},
		Stream: Stream{
			StartingPosition:  "TRIM_HORIZON",
			PollInterval:      time.Second,
			MaxRecordsPerRead: 10000,
		},
		Leases: Leases{
			Table:              "shardhose-leases",
			LeaseDuration:      10 * time.Second,
			RenewInterval:      3 * time.Second,
			ShardSyncInterval:  10 * time.Second,
			CheckpointInterval: time.Second,
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
	}
}

// S3Defaults are applied to every S3 sink section for keys it leaves out.
func S3Defaults() S3Sink {
	return S3Sink{
		Compression:    "GZIP",
		BufferingHints: BufferingHints{SizeInMBs: 5, IntervalInSeconds: 300},
		AppendNewline:  true,
		MaxUploads:     4,
		Retry:          Retry{InitialBackoff: time.Second, MaxBackoff: 2 * time.Minute},
	}
}

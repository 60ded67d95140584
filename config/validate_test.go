package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// valid returns a configuration that passes Validate.
func valid() Config {
	c := Defaults()
	c.Stream.Name = "orders"
	c.Leases.WorkerID = "worker-1"
	s3 := S3Defaults()
	s3.Bucket = "my-bucket"
	c.Sinks = []Sink{{Name: "archive", Type: "s3", S3: &s3}}
	return c
}

func TestValidDefaultsPass(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestParseStreamARN(t *testing.T) {
	good := []struct {
		arn  string
		want StreamARN
	}{
		{"arn:aws:kinesis:us-east-1:123456789012:stream/orders", StreamARN{"aws", "us-east-1", "123456789012", "orders"}},
		{"arn:aws-cn:kinesis:cn-north-1:000000000000:stream/a.b_c-D", StreamARN{"aws-cn", "cn-north-1", "000000000000", "a.b_c-D"}},
		{"arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/" + strings.Repeat("x", 128), StreamARN{"aws-us-gov", "us-gov-west-1", "123456789012", strings.Repeat("x", 128)}},
	}
	for _, g := range good {
		got, err := ParseStreamARN(g.arn)
		if err != nil || got != g.want {
			t.Errorf("ParseStreamARN(%q) = %+v, %v; want %+v", g.arn, got, err, g.want)
		}
	}
	for _, bad := range []string{
		"",
		"orders",
		"arn:aws:kinesis:us-east-1:123456789012:stream/",
		"arn:aws:kinesis:us-east-1:12345678901:stream/orders",             // 11-digit account
		"arn:aws:firehose:us-east-1:123456789012:deliverystream/orders",   // another service
		"arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/c", // a consumer ARN
		"arn:aws:kinesis:us-east-1:123456789012:stream/" + strings.Repeat("x", 129),
		"arn:aws:kinesis::123456789012:stream/orders",
	} {
		if got, err := ParseStreamARN(bad); err == nil {
			t.Errorf("ParseStreamARN(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestStreamName(t *testing.T) {
	cases := []struct {
		s    Stream
		want string
	}{
		{Stream{Name: "n"}, "n"},
		{Stream{ARN: "arn:aws:kinesis:us-east-1:123456789012:stream/from-arn"}, "from-arn"},
		{Stream{Name: "n", ARN: "arn:aws:kinesis:us-east-1:123456789012:stream/from-arn"}, "n"},
		{Stream{ARN: "not-an-arn"}, ""},
		{Stream{}, ""},
	}
	for _, c := range cases {
		if got := c.s.StreamName(); got != c.want {
			t.Errorf("%+v.StreamName() = %q, want %q", c.s, got, c.want)
		}
	}
}

// rule is one boundary case: set changes a valid config; key is the key that must be reported,
// or "" when the config must stay valid.
type rule struct {
	name string
	set  func(*Config)
	key  string
}

func s3Of(c *Config) *S3Sink { return c.Sinks[0].S3 }

func TestValidateBoundaries(t *testing.T) {
	rules := []rule{
		// aws
		{"region missing", func(c *Config) { c.AWS.Region = "" }, "aws.region"},
		{"region with spaces", func(c *Config) { c.AWS.Region = "us east 1" }, "aws.region"},
		{"endpoint http", func(c *Config) { c.AWS.Endpoint = "http://127.0.0.1:4566" }, ""},
		{"endpoint https with path", func(c *Config) { c.AWS.Endpoint = "https://proxy.example.com/aws" }, ""},
		{"endpoint without scheme", func(c *Config) { c.AWS.Endpoint = "127.0.0.1:4566" }, "aws.endpoint"},
		{"endpoint ftp", func(c *Config) { c.AWS.Endpoint = "ftp://host" }, "aws.endpoint"},
		{"endpoint without host", func(c *Config) { c.AWS.Endpoint = "http://" }, "aws.endpoint"},
		{"kinesis endpoint bad", func(c *Config) { c.AWS.Endpoints.Kinesis = "localhost" }, "aws.endpoints.kinesis"},
		{"lambda endpoint bad", func(c *Config) { c.AWS.Endpoints.Lambda = "http://h?x=1" }, "aws.endpoints.lambda"},
		{"credentials source unknown", func(c *Config) { c.AWS.Credentials.Source = "env" }, "aws.credentials.source"},
		{"credentials source empty", func(c *Config) { c.AWS.Credentials.Source = "" }, "aws.credentials.source"},
		{"read timeout 100ms", func(c *Config) { c.AWS.Timeouts.Read = 100 * time.Millisecond }, ""},
		{"read timeout 99ms", func(c *Config) { c.AWS.Timeouts.Read = 99 * time.Millisecond }, "aws.timeouts.read"},
		{"write timeout 0", func(c *Config) { c.AWS.Timeouts.Write = 0 }, "aws.timeouts.write"},
		{"upload timeout 10m", func(c *Config) { c.AWS.Timeouts.Upload = 10 * time.Minute }, ""},
		{"upload timeout 11m", func(c *Config) { c.AWS.Timeouts.Upload = 11 * time.Minute }, "aws.timeouts.upload"},
		{"upload timeout negative", func(c *Config) { c.AWS.Timeouts.Upload = -time.Second }, "aws.timeouts.upload"},
		{"static with both keys", func(c *Config) {
			c.AWS.Credentials = Credentials{Source: "static", AccessKeyID: "a", SecretAccessKey: "s"}
		}, ""},
		{"static without id", func(c *Config) { c.AWS.Credentials = Credentials{Source: "static", SecretAccessKey: "s"} }, "aws.credentials.access_key_id"},
		{"static without secret", func(c *Config) { c.AWS.Credentials = Credentials{Source: "static", AccessKeyID: "a"} }, "aws.credentials.secret_access_key"},
		{"default with a key", func(c *Config) { c.AWS.Credentials.SecretAccessKey = "s" }, "aws.credentials.secret_access_key"},

		// stream
		{"no name, no arn", func(c *Config) { c.Stream.Name = "" }, "stream.name"},
		{"arn only", func(c *Config) {
			c.Stream.Name, c.Stream.ARN = "", "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
		}, ""},
		{"arn malformed", func(c *Config) { c.Stream.ARN = "arn:aws:kinesis:us-east-1:1:stream/orders" }, "stream.arn"},
		{"arn and name disagree", func(c *Config) { c.Stream.ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/other" }, "stream.name"},
		{"arn and name agree", func(c *Config) { c.Stream.ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders" }, ""},
		{"arn in another region", func(c *Config) { c.Stream.ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders" }, "stream.arn"},
		{"name 128", func(c *Config) { c.Stream.Name = strings.Repeat("a", 128) }, ""},
		{"name 129", func(c *Config) { c.Stream.Name = strings.Repeat("a", 129) }, "stream.name"},
		{"name bad char", func(c *Config) { c.Stream.Name = "a/b" }, "stream.name"},
		{"starting position LATEST", func(c *Config) { c.Stream.StartingPosition = "LATEST" }, ""},
		{"starting position lower case", func(c *Config) { c.Stream.StartingPosition = "latest" }, "stream.starting_position"},
		{"AT_TIMESTAMP without timestamp", func(c *Config) { c.Stream.StartingPosition = "AT_TIMESTAMP" }, "stream.starting_position_timestamp"},
		{"AT_TIMESTAMP negative", func(c *Config) {
			c.Stream.StartingPosition, c.Stream.StartingPositionTimestamp = "AT_TIMESTAMP", -1
		}, "stream.starting_position_timestamp"},
		{"AT_TIMESTAMP positive", func(c *Config) {
			c.Stream.StartingPosition, c.Stream.StartingPositionTimestamp = "AT_TIMESTAMP", 1700000000.5
		}, ""},
		{"timestamp without AT_TIMESTAMP", func(c *Config) { c.Stream.StartingPositionTimestamp = 1700000000 }, "stream.starting_position_timestamp"},
		{"poll 199ms", func(c *Config) { c.Stream.PollInterval = 199 * time.Millisecond }, "stream.poll_interval"},
		{"poll 200ms", func(c *Config) { c.Stream.PollInterval = 200 * time.Millisecond }, ""},
		{"poll 4m", func(c *Config) { c.Stream.PollInterval = 4 * time.Minute }, ""},
		{"poll 4m1ms", func(c *Config) { c.Stream.PollInterval = 4*time.Minute + time.Millisecond }, "stream.poll_interval"},
		{"poll negative", func(c *Config) { c.Stream.PollInterval = -time.Second }, "stream.poll_interval"},
		{"max records 0", func(c *Config) { c.Stream.MaxRecordsPerRead = 0 }, "stream.max_records_per_read"},
		{"max records 1", func(c *Config) { c.Stream.MaxRecordsPerRead = 1 }, ""},
		{"max records 10000", func(c *Config) { c.Stream.MaxRecordsPerRead = 10000 }, ""},
		{"max records 10001", func(c *Config) { c.Stream.MaxRecordsPerRead = 10001 }, "stream.max_records_per_read"},
		{"idle poll 200ms", func(c *Config) { c.Stream.MaxIdlePollInterval = 200 * time.Millisecond }, ""},
		{"idle poll 199ms", func(c *Config) { c.Stream.MaxIdlePollInterval = 199 * time.Millisecond }, "stream.max_idle_poll_interval"},
		{"idle poll 4m", func(c *Config) { c.Stream.MaxIdlePollInterval = 4 * time.Minute }, ""},
		{"idle poll 4m1s", func(c *Config) { c.Stream.MaxIdlePollInterval = 4*time.Minute + time.Second }, "stream.max_idle_poll_interval"},
		{"response buffers 1", func(c *Config) { c.Stream.ResponseBuffers = 1 }, ""},
		{"response buffers 0", func(c *Config) { c.Stream.ResponseBuffers = 0 }, "stream.response_buffers"},
		{"response buffers 1024", func(c *Config) { c.Stream.ResponseBuffers = 1024 }, ""},
		{"response buffers 1025", func(c *Config) { c.Stream.ResponseBuffers = 1025 }, "stream.response_buffers"},

		// leases
		{"table empty", func(c *Config) { c.Leases.Table = "" }, "leases.table"},
		{"table 2 chars", func(c *Config) { c.Leases.Table = "ab" }, "leases.table"},
		{"table 3 chars", func(c *Config) { c.Leases.Table = "abc" }, ""},
		{"table 255 chars", func(c *Config) { c.Leases.Table = strings.Repeat("t", 255) }, ""},
		{"table 256 chars", func(c *Config) { c.Leases.Table = strings.Repeat("t", 256) }, "leases.table"},
		{"table bad char", func(c *Config) { c.Leases.Table = "my table" }, "leases.table"},
		{"worker id empty", func(c *Config) { c.Leases.WorkerID = "" }, "leases.worker_id"},
		{"lease 999ms", func(c *Config) {
			c.Leases.LeaseDuration, c.Leases.RenewInterval = 999*time.Millisecond, 100*time.Millisecond
		}, "leases.lease_duration"},
		{"lease 1s", func(c *Config) { c.Leases.LeaseDuration, c.Leases.RenewInterval = time.Second, 500*time.Millisecond }, ""},
		{"renew 0", func(c *Config) { c.Leases.RenewInterval = 0 }, "leases.renew_interval"},
		{"renew half the lease", func(c *Config) { c.Leases.RenewInterval = 5 * time.Second }, ""},
		{"renew over half the lease", func(c *Config) { c.Leases.RenewInterval = 5*time.Second + time.Nanosecond }, "leases.renew_interval"},
		{"shard sync 999ms", func(c *Config) { c.Leases.ShardSyncInterval = 999 * time.Millisecond }, "leases.shard_sync_interval"},
		{"shard sync 1s", func(c *Config) { c.Leases.ShardSyncInterval = time.Second }, ""},
		{"checkpoint 0", func(c *Config) { c.Leases.CheckpointInterval = 0 }, "leases.checkpoint_interval"},
		{"checkpoint 1ns", func(c *Config) { c.Leases.CheckpointInterval = time.Nanosecond }, ""},
		{"checkpoint negative", func(c *Config) { c.Leases.CheckpointInterval = -time.Second }, "leases.checkpoint_interval"},
		{"max leases -1", func(c *Config) { c.Leases.MaxLeasesPerWorker = -1 }, "leases.max_leases_per_worker"},
		{"max leases 0", func(c *Config) { c.Leases.MaxLeasesPerWorker = 0 }, ""},

		// memory
		{"memory limit 0", func(c *Config) { c.Memory.LimitMBs = 0 }, ""},
		{"memory limit 16", func(c *Config) { c.Memory.LimitMBs = 16 }, ""},
		{"memory limit 15", func(c *Config) { c.Memory.LimitMBs = 15 }, "memory.limit_mbs"},
		{"memory limit negative", func(c *Config) { c.Memory.LimitMBs = -1 }, "memory.limit_mbs"},
		{"memory limit 1 TiB", func(c *Config) { c.Memory.LimitMBs = 1 << 20 }, ""},
		{"memory limit above 1 TiB", func(c *Config) { c.Memory.LimitMBs = 1<<20 + 1 }, "memory.limit_mbs"},
		{"in flight 1", func(c *Config) { c.Memory.MaxInFlightMBs = 1 }, ""},
		{"in flight negative", func(c *Config) { c.Memory.MaxInFlightMBs = -1 }, "memory.max_in_flight_mbs"},
		{"in flight half the limit", func(c *Config) { c.Memory.LimitMBs, c.Memory.MaxInFlightMBs = 64, 32 }, ""},
		{"in flight over half the limit", func(c *Config) { c.Memory.LimitMBs, c.Memory.MaxInFlightMBs = 64, 33 }, "memory.max_in_flight_mbs"},
		{"in flight without a limit", func(c *Config) { c.Memory.MaxInFlightMBs = 4096 }, ""},

		// batching
		{"batch 0", func(c *Config) { c.Batching.BatchSize = 0 }, "batching.batch_size"},
		{"batch 1", func(c *Config) { c.Batching.BatchSize = 1 }, ""},
		{"batch 10000", func(c *Config) { c.Batching.BatchSize = 10000 }, ""},
		{"batch 10001", func(c *Config) { c.Batching.BatchSize = 10001 }, "batching.batch_size"},
		{"window -1", func(c *Config) { c.Batching.MaximumBatchingWindowInSeconds = -1 }, "batching.maximum_batching_window_in_seconds"},
		{"window 0", func(c *Config) { c.Batching.MaximumBatchingWindowInSeconds = 0 }, ""},
		{"window 300", func(c *Config) { c.Batching.MaximumBatchingWindowInSeconds = 300 }, ""},
		{"window 301", func(c *Config) { c.Batching.MaximumBatchingWindowInSeconds = 301 }, "batching.maximum_batching_window_in_seconds"},
		{"in flight = batch", func(c *Config) { c.Batching.MaxInFlightRecords = c.Batching.BatchSize }, ""},
		{"in flight < batch", func(c *Config) { c.Batching.MaxInFlightRecords = c.Batching.BatchSize - 1 }, "batching.max_in_flight_records"},

		// sinks
		{"no sinks", func(c *Config) { c.Sinks = nil }, "sinks"},
		{"sink name empty", func(c *Config) { c.Sinks[0].Name = "" }, "sinks[0].name"},
		{"sink name 64", func(c *Config) { c.Sinks[0].Name = strings.Repeat("n", 64) }, ""},
		{"sink name 65", func(c *Config) { c.Sinks[0].Name = strings.Repeat("n", 65) }, "sinks[0].name"},
		{"sink name with a dot", func(c *Config) { c.Sinks[0].Name = "a.b" }, "sinks[0].name"},
		{"sink names repeated", func(c *Config) {
			other := *c.Sinks[0].S3
			c.Sinks = append(c.Sinks, Sink{Name: "archive", Type: "s3", S3: &other})
		}, "sinks[1].name"},
		{"sink type unknown", func(c *Config) { c.Sinks[0].Type = "kafka" }, "sinks[0].type"},
		{"sink type empty", func(c *Config) { c.Sinks[0].Type = "" }, "sinks[0].type"},
		{"s3 section missing", func(c *Config) { c.Sinks[0].S3 = nil }, "sinks[0].s3"},
		{"bucket missing", func(c *Config) { s3Of(c).Bucket = "" }, "sinks[0].s3.bucket"},
		{"bucket upper case", func(c *Config) { s3Of(c).Bucket = "My-Bucket" }, "sinks[0].s3.bucket"},
		{"bucket 3", func(c *Config) { s3Of(c).Bucket = "abc" }, ""},
		{"bucket 63", func(c *Config) { s3Of(c).Bucket = strings.Repeat("b", 63) }, ""},
		{"bucket 64", func(c *Config) { s3Of(c).Bucket = strings.Repeat("b", 64) }, "sinks[0].s3.bucket"},
		{"compression UNCOMPRESSED", func(c *Config) { s3Of(c).Compression = "UNCOMPRESSED" }, ""},
		{"compression Snappy", func(c *Config) { s3Of(c).Compression = "Snappy" }, "sinks[0].s3.compression"},
		{"size 0", func(c *Config) { s3Of(c).BufferingHints.SizeInMBs = 0 }, "sinks[0].s3.buffering_hints.size_in_mbs"},
		{"size 1", func(c *Config) { s3Of(c).BufferingHints.SizeInMBs = 1 }, ""},
		{"size 128", func(c *Config) { s3Of(c).BufferingHints.SizeInMBs = 128 }, ""},
		{"size 129", func(c *Config) { s3Of(c).BufferingHints.SizeInMBs = 129 }, "sinks[0].s3.buffering_hints.size_in_mbs"},
		{"interval -1", func(c *Config) { s3Of(c).BufferingHints.IntervalInSeconds = -1 }, "sinks[0].s3.buffering_hints.interval_in_seconds"},
		{"interval 0", func(c *Config) { s3Of(c).BufferingHints.IntervalInSeconds = 0 }, ""},
		{"interval 900", func(c *Config) { s3Of(c).BufferingHints.IntervalInSeconds = 900 }, ""},
		{"interval 901", func(c *Config) { s3Of(c).BufferingHints.IntervalInSeconds = 901 }, "sinks[0].s3.buffering_hints.interval_in_seconds"},
		{"uploads 0", func(c *Config) { s3Of(c).MaxUploads = 0 }, "sinks[0].s3.max_uploads"},
		{"uploads 1", func(c *Config) { s3Of(c).MaxUploads = 1 }, ""},
		{"uploads 64", func(c *Config) { s3Of(c).MaxUploads = 64 }, ""},
		{"uploads 65", func(c *Config) { s3Of(c).MaxUploads = 65 }, "sinks[0].s3.max_uploads"},
		{"initial backoff 0", func(c *Config) { s3Of(c).Retry.InitialBackoff = 0 }, "sinks[0].s3.retry.initial_backoff"},
		{"max backoff 0", func(c *Config) { s3Of(c).Retry.MaxBackoff = 0 }, "sinks[0].s3.retry.max_backoff"},
		{"max backoff = initial", func(c *Config) { s3Of(c).Retry.MaxBackoff = s3Of(c).Retry.InitialBackoff }, ""},
		{"max backoff < initial", func(c *Config) { s3Of(c).Retry.MaxBackoff = s3Of(c).Retry.InitialBackoff - 1 }, "sinks[0].s3.retry.max_backoff"},
		{"max elapsed negative", func(c *Config) { s3Of(c).Retry.MaxElapsed = -time.Second }, "sinks[0].s3.retry.max_elapsed"},
		{"max elapsed 0", func(c *Config) { s3Of(c).Retry.MaxElapsed = 0 }, ""},

		// the rest
		{"dead letter type unknown", func(c *Config) { c.DeadLetter.Type = "kafka" }, "dead_letter.type"},
		{"drain 0", func(c *Config) { c.Shutdown.DrainTimeout = 0 }, "shutdown.drain_timeout"},
		{"drain 1ns", func(c *Config) { c.Shutdown.DrainTimeout = time.Nanosecond }, ""},
		{"drain negative", func(c *Config) { c.Shutdown.DrainTimeout = -time.Second }, "shutdown.drain_timeout"},
		{"log format json", func(c *Config) { c.Log.Format = "json" }, ""},
		{"log format text", func(c *Config) { c.Log.Format = "text" }, ""},
		{"log format logfmt", func(c *Config) { c.Log.Format = "logfmt" }, "log.format"},
		{"log level debug", func(c *Config) { c.Log.Level = "debug" }, ""},
		{"log level warning", func(c *Config) { c.Log.Level = "warning" }, "log.level"},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			c := valid()
			r.set(&c)
			err := c.Validate()
			if r.key == "" {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want an error for %s, got %v", r.key, err)
			}
			if len(errs) != 1 || errs[0].Key != r.key {
				t.Fatalf("want exactly one error, for %s; got:\n%v", r.key, err)
			}
			if errs[0].Problem == "" || !strings.HasPrefix(errs[0].Error(), r.key+": ") {
				t.Errorf("message %q does not start with the key", errs[0].Error())
			}
		})
	}
}

func TestValidateMessages(t *testing.T) {
	c := valid()
	c.Stream.Name = ""
	c.Batching.BatchSize = 0
	c.Log.Level = "verbose"
	c.AWS.Credentials = Credentials{Source: "static", AccessKeyID: "AKIDSECRET"}
	c.AWS.Timeouts.Upload = 20 * time.Minute
	err := c.Validate()
	want := []string{
		"stream.name: missing: set the stream's name or ARN",
		"batching.batch_size: 0 is out of range: allowed 1 to 10000",
		`log.level: "verbose" is not allowed: use debug, info, warn or error`,
		"aws.credentials.secret_access_key: missing",
		"aws.timeouts.upload: 20m0s is out of range: allowed 100ms to 10m0s",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "AKIDSECRET") {
		t.Errorf("error repeats a credential:\n%v", err)
	}
	var fe FieldError
	if !errors.As(err, &fe) || fe.Key == "" {
		t.Errorf("errors.As(err, *FieldError) = %+v, want the first problem", fe)
	}
}

func TestValidateOneErrorPerKey(t *testing.T) {
	c := valid()
	c.Leases.RenewInterval = -time.Second // negative, and also not positive: reported once
	c.Stream.PollInterval = -time.Second  // negative, and also out of range
	err := c.Validate()
	errs := asErrors(t, err)
	if got := keysOf(errs); len(got) != 2 || got[0] != "leases.renew_interval" || got[1] != "stream.poll_interval" {
		t.Fatalf("keys = %v\n%v", got, err)
	}
	for _, e := range errs {
		if !strings.Contains(e.Problem, "negative") {
			t.Errorf("%s: %q does not say negative", e.Key, e.Problem)
		}
	}
}

func TestMemoryInFlightBytes(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		m            Memory
		limit, floor int64
		want         int64
	}{
		{Memory{}, 0, 15 * mib, DefaultMaxInFlightMBs * mib},     // no limit anywhere
		{Memory{MaxInFlightMBs: 8}, 0, 15 * mib, 8 * mib},        // set: taken as it is
		{Memory{MaxInFlightMBs: 8}, 64 * mib, 15 * mib, 8 * mib}, // set wins over the limit
		{Memory{}, 64 * mib, 16 * mib, 16 * mib},                 // a third of 48
		{Memory{}, 32 * mib, 17 * mib, 5 * mib},                  // a third of 15
		{Memory{}, 16 * mib, 16 * mib, mib},                      // nothing left: 1 MiB
		{Memory{}, 16 * mib, 30 * mib, mib},                      // less than nothing: 1 MiB
	} {
		if got := c.m.InFlightBytes(c.limit, c.floor); got != c.want {
			t.Errorf("%+v.InFlightBytes(%d, %d) = %d, want %d", c.m, c.limit, c.floor, got, c.want)
		}
	}
}

package config

import (
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/itchyny/gojq"

	"github.com/shardhose/shardhose/internal/lazyregexp"
	"github.com/shardhose/shardhose/sinks/s3/prefix"
)

// FieldError is one problem with one key. Key is the dotted key (sinks are written sinks[0].s3.bucket;
// a problem with an environment variable itself names the variable). Value is the offending value
// as a user would write it (text quoted), or empty when the key is missing or its value is secret.
// Problem says what is wrong and what is allowed.
type FieldError struct {
	Key     string
	Value   string
	Problem string
}

// Error returns "key: value problem", or "key: problem" without a value, e.g.
// "batching.batch_size: 0 is out of range: allowed 1 to 10000".
func (e FieldError) Error() string {
	var b strings.Builder
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	if e.Value != "" {
		b.WriteString(e.Value + " ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Errors is every problem found in a configuration, at most one per key, in a stable order.
// Load and Validate return it (as error) only when it is non-empty; use errors.As to get it.
type Errors []FieldError

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each FieldError as an error, so errors.As can reach a single FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// merge returns es followed by the entries of more whose key es does not already have.
func (es Errors) merge(more Errors) Errors {
	seen := make(map[string]bool, len(es))
	for _, e := range es {
		seen[e.Key] = true
	}
	for _, e := range more {
		if !seen[e.Key] {
			seen[e.Key] = true
			es = append(es, e)
		}
	}
	return es
}

// Limits Validate enforces that are shardhose's own choices rather than AWS's.
const (
	// MinPollInterval keeps one consumer within Kinesis's 5 GetRecords calls per shard per second.
	MinPollInterval = 200 * time.Millisecond
	// MaxPollInterval stays clear of the 5 minutes after which a shard iterator expires.
	MaxPollInterval = 4 * time.Minute
)

// Allowed values of the enumerated keys.
var (
	startingPositions = []string{"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"}
	credentialSources = []string{"default", "static"}
	sinkTypes         = []string{"s3", "http", "opensearch", "firehose", "file"}
	compressions      = []string{"GZIP", "UNCOMPRESSED"}
	logFormats        = []string{"auto", "json", "text"}
	logLevels         = []string{"debug", "info", "warn", "error"}
)

var (
	regionRe     = lazyregexp.New(`^[a-z0-9-]+$`)
	streamNameRe = lazyregexp.NewBounded(`^[a-zA-Z0-9_.-]+$`, 1, 128)
	streamARNRe  = lazyregexp.New(`^arn:(aws[a-z-]*):kinesis:([a-z0-9-]+):([0-9]{12}):stream/([a-zA-Z0-9_.-]{1,128})$`)
	tableNameRe  = lazyregexp.NewBounded(`^[a-zA-Z0-9_.-]+$`, 3, 255)
	sinkNameRe   = lazyregexp.NewBounded(`^[a-zA-Z0-9_-]+$`, 1, 64)
	bucketNameRe = lazyregexp.NewBounded(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`, 3, 63)
	// columnNameRe is what Athena, Glue and Hive accept as a Parquet column name without quoting.
	columnNameRe = lazyregexp.NewBounded(`^[A-Za-z_][A-Za-z0-9_]*$`, 1, 255)
)

// StreamARN is a parsed Kinesis stream ARN: arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME.
type StreamARN struct {
	Partition string // aws, aws-cn, aws-us-gov, ...
	Region    string
	Account   string // 12 digits
	Name      string
}

// ParseStreamARN parses a Kinesis stream ARN, or says what shape was expected.
func ParseStreamARN(arn string) (StreamARN, error) {
	m := streamARNRe.FindStringSubmatch(arn)
	if m == nil {
		return StreamARN{}, fmt.Errorf("%q is not a Kinesis stream ARN: want arn:aws:kinesis:REGION:ACCOUNT:stream/NAME", arn)
	}
	return StreamARN{Partition: m[1], Region: m[2], Account: m[3], Name: m[4]}, nil
}

// StreamName returns the stream's name: Name when set, else the name inside ARN, else "" (also
// when ARN does not parse; Validate reports that).
func (s Stream) StreamName() string {
	if s.Name != "" {
		return s.Name
	}
	if a, err := ParseStreamARN(s.ARN); err == nil {
		return a.Name
	}
	return ""
}

// Validate checks every key and every combination of keys and returns all problems at once as
// Errors (nil when there are none), each naming the key, the bad value and what is allowed.
// Ranges follow AWS where the key re-creates an AWS setting. It does not fill derived defaults:
// call ApplyDerivedDefaults first on a Config that did not come from Load.
func (c *Config) Validate() error {
	v := &checker{seen: map[string]bool{}}
	v.aws(c.AWS)
	v.stream(c.Stream, c.AWS.Region)
	v.leases(c.Leases)
	v.batching(c.Batching)
	v.memory(c.Memory)
	v.processing(c.Processing)
	v.sinks(c.Sinks)
	v.deadLetter(c.DeadLetter)
	v.processingNeedsDeadLetter(c.Processing, c.DeadLetter)
	v.processingFailedHasAPlace(c.Processing, c.DeadLetter)
	v.stallAboveBuffering(c.Leases.StallTimeout, c.Sinks)
	v.exactlyOnceNeedsOrder(c.Processing, c.Sinks)
	v.exactlyOnceNeedsLocalHandlers(c.Processing, c.Sinks)
	v.durationMin("shutdown.drain_timeout", c.Shutdown.DrainTimeout, time.Nanosecond)
	v.oneOf("log.format", c.Log.Format, logFormats)
	v.oneOf("log.level", c.Log.Level, logLevels)
	v.metrics(c.Metrics, c.Leases)
	// Any duration no rule above covers still may not be negative.
	walkValues(reflect.ValueOf(*c), "", func(key string, f reflect.Value) {
		if f.Type() == durationType && f.Int() < 0 {
			v.negative(key, time.Duration(f.Int()))
		}
	})
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

// checker collects at most one problem per key: the first rule to fail on a key wins, so a
// negative duration is not also reported as out of range.
type checker struct {
	errs Errors
	seen map[string]bool
}

func (v *checker) add(key, value, problem string) {
	if v.seen[key] {
		return
	}
	v.seen[key] = true
	v.errs = append(v.errs, FieldError{Key: key, Value: value, Problem: problem})
}

func (v *checker) bad(key string) bool { return v.seen[key] }

func (v *checker) missing(key, hint string) { v.add(key, "", "missing: "+hint) }

func (v *checker) negative(key string, d time.Duration) {
	v.add(key, d.String(), "is negative: durations cannot be negative")
}

func (v *checker) intRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(key, strconv.Itoa(n), fmt.Sprintf("is out of range: allowed %d to %d", lo, hi))
	}
}

func (v *checker) intMin(key string, n, lo int) {
	if n < lo {
		v.add(key, strconv.Itoa(n), fmt.Sprintf("is out of range: allowed %d or more", lo))
	}
}

// durationMin requires d >= lo (lo of 1ns reads "more than 0s").
func (v *checker) durationMin(key string, d, lo time.Duration) {
	switch {
	case d < 0:
		v.negative(key, d)
	case d < lo && lo == time.Nanosecond:
		v.add(key, d.String(), "is out of range: must be more than 0s")
	case d < lo:
		v.add(key, d.String(), fmt.Sprintf("is out of range: allowed %s or more", lo))
	}
}

func (v *checker) durationRange(key string, d, lo, hi time.Duration, why string) {
	switch {
	case d < 0:
		v.negative(key, d)
	case d < lo || d > hi:
		v.add(key, d.String(), fmt.Sprintf("is out of range: allowed %s to %s (%s)", lo, hi, why))
	}
}

func (v *checker) oneOf(key, s string, allowed []string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	if s == "" {
		v.missing(key, "use "+list(allowed))
		return
	}
	v.add(key, strconv.Quote(s), "is not allowed: use "+list(allowed))
}

// list writes "a, b or c".
func list(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

func (v *checker) endpoint(key, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		v.add(key, strconv.Quote(raw), "is not an endpoint URL: want http:// or https:// with a host and optional port, e.g. http://127.0.0.1:4566")
	}
}

func (v *checker) aws(a AWS) {
	switch {
	case a.Region == "":
		v.missing("aws.region", "set the AWS region, e.g. us-east-1")
	case !regionRe.MatchString(a.Region):
		v.add("aws.region", strconv.Quote(a.Region), "is not a region name: lower-case letters, digits and hyphens, e.g. us-east-1")
	}
	v.endpoint("aws.endpoint", a.Endpoint)
	e := a.Endpoints
	for _, ep := range []struct{ key, url string }{
		{"kinesis", e.Kinesis}, {"dynamodb", e.DynamoDB}, {"s3", e.S3}, {"sqs", e.SQS},
		{"sns", e.SNS}, {"firehose", e.Firehose}, {"lambda", e.Lambda}, {"cloudwatch", e.CloudWatch},
	} {
		v.endpoint("aws.endpoints."+ep.key, ep.url)
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"read", a.Timeouts.Read}, {"write", a.Timeouts.Write}, {"upload", a.Timeouts.Upload}} {
		v.durationRange("aws.timeouts."+t.key, t.d, MinAWSTimeout, MaxAWSTimeout, "one attempt of an AWS call")
	}
	c := a.Credentials
	v.oneOf("aws.credentials.source", c.Source, credentialSources)
	switch c.Source {
	case "static":
		if c.AccessKeyID == "" {
			v.missing("aws.credentials.access_key_id", "static credentials need an access key ID")
		}
		if c.SecretAccessKey == "" {
			v.missing("aws.credentials.secret_access_key", "static credentials need a secret access key")
		}
	case "default":
		// Keys here would be silently ignored by the SDK's chain; say so instead. Values are secret
		// and never repeated in messages.
		for _, k := range []struct{ key, val string }{
			{"access_key_id", c.AccessKeyID}, {"secret_access_key", c.SecretAccessKey}, {"session_token", c.SessionToken},
		} {
			if k.val != "" {
				v.add("aws.credentials."+k.key, "", `is set but aws.credentials.source is "default", which ignores it: set source to static or remove the key`)
			}
		}
	}
}

func (v *checker) stream(s Stream, region string) {
	if s.Name == "" && s.ARN == "" {
		v.missing("stream.name", "set the stream's name or ARN (stream.arn)")
	}
	if s.Name != "" && !streamNameRe.MatchString(s.Name) {
		v.add("stream.name", strconv.Quote(s.Name), "is not a stream name: 1 to 128 characters from a-z, A-Z, 0-9, _ . -")
	}
	if s.ARN != "" {
		a, err := ParseStreamARN(s.ARN)
		switch {
		case err != nil:
			v.add("stream.arn", strconv.Quote(s.ARN), "is not a Kinesis stream ARN: want arn:aws:kinesis:REGION:ACCOUNT:stream/NAME with a 12-digit account")
		case s.Name != "" && s.Name != a.Name:
			v.add("stream.name", strconv.Quote(s.Name), fmt.Sprintf("differs from the name in stream.arn (%q): set one of them, or both alike", a.Name))
		case region != "" && a.Region != region:
			v.add("stream.arn", strconv.Quote(s.ARN), fmt.Sprintf("is in region %s but aws.region is %s: the client calls aws.region's endpoint", a.Region, region))
		}
	}
	v.oneOf("stream.starting_position", s.StartingPosition, startingPositions)
	switch {
	case s.StartingPosition == "AT_TIMESTAMP" && s.StartingPositionTimestamp <= 0:
		v.add("stream.starting_position_timestamp", formatFloat(s.StartingPositionTimestamp), "is out of range: AT_TIMESTAMP needs a positive Unix time in seconds")
	case s.StartingPosition != "AT_TIMESTAMP" && s.StartingPositionTimestamp != 0:
		v.add("stream.starting_position_timestamp", formatFloat(s.StartingPositionTimestamp), fmt.Sprintf("is set but starting_position is %s: it is used only with AT_TIMESTAMP", s.StartingPosition))
	}
	v.durationRange("stream.poll_interval", s.PollInterval, MinPollInterval, MaxPollInterval,
		"faster exceeds Kinesis's 5 reads per shard per second; slower lets the shard iterator expire")
	v.intRange("stream.max_records_per_read", s.MaxRecordsPerRead, 1, 10000)
	v.durationRange("stream.max_idle_poll_interval", s.MaxIdlePollInterval, MinPollInterval, MaxPollInterval,
		"where the wait between reads of a quiet shard stops doubling, short of the 5 minutes after which a shard iterator expires")
	v.intRange("stream.response_buffers", s.ResponseBuffers, 1, 1024)
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func (v *checker) leases(l Leases) {
	switch {
	case l.Table == "":
		v.missing("leases.table", "name the DynamoDB lease table")
	case !tableNameRe.MatchString(l.Table):
		v.add("leases.table", strconv.Quote(l.Table), "is not a DynamoDB table name: 3 to 255 characters from a-z, A-Z, 0-9, _ . -")
	}
	if strings.TrimSpace(l.WorkerID) == "" {
		v.missing("leases.worker_id", "name this worker (the default is hostname-pid)")
	}
	v.durationMin("leases.lease_duration", l.LeaseDuration, time.Second)
	v.durationMin("leases.renew_interval", l.RenewInterval, time.Nanosecond)
	if !v.bad("leases.lease_duration") && !v.bad("leases.renew_interval") && l.RenewInterval*2 > l.LeaseDuration {
		v.add("leases.renew_interval", l.RenewInterval.String(), fmt.Sprintf(
			"is too long for leases.lease_duration %s: allowed up to half of it (%s), so an owner renews at least twice per lease (a third is safer)",
			l.LeaseDuration, l.LeaseDuration/2))
	}
	v.durationMin("leases.shard_sync_interval", l.ShardSyncInterval, time.Second)
	v.durationMin("leases.checkpoint_interval", l.CheckpointInterval, time.Nanosecond)
	v.intMin("leases.max_leases_per_worker", l.MaxLeasesPerWorker, 0)
	if l.StallTimeout > 0 && l.StallTimeout < time.Minute {
		v.add("leases.stall_timeout", l.StallTimeout.String(), "is out of range: allowed 0 (off) or 1m and more")
	}
}

func (v *checker) batching(b Batching) {
	v.intRange("batching.batch_size", b.BatchSize, 1, 10000)
	v.intRange("batching.maximum_batching_window_in_seconds", b.MaximumBatchingWindowInSeconds, 0, 300)
	if !v.bad("batching.batch_size") && b.MaxInFlightRecords < b.BatchSize {
		v.add("batching.max_in_flight_records", strconv.Itoa(b.MaxInFlightRecords),
			fmt.Sprintf("is out of range: allowed batching.batch_size (%d) or more, or no batch could ever fill", b.BatchSize))
	}
}

func (v *checker) sinks(sinks []Sink) {
	if len(sinks) == 0 {
		v.missing("sinks", "configure at least one sink")
		return
	}
	firstUse := map[string]int{}
	for i, s := range sinks {
		p := fmt.Sprintf("sinks[%d]", i)
		switch {
		case s.Name == "":
			v.missing(p+".name", "name the sink: 1 to 64 characters from a-z, A-Z, 0-9, _ -")
		case !sinkNameRe.MatchString(s.Name):
			v.add(p+".name", strconv.Quote(s.Name), "is not a sink name: 1 to 64 characters from a-z, A-Z, 0-9, _ -")
		default:
			if j, dup := firstUse[s.Name]; dup {
				v.add(p+".name", strconv.Quote(s.Name), fmt.Sprintf("is already used by sinks[%d]: names must be unique", j))
			} else {
				firstUse[s.Name] = i
			}
		}
		v.oneOf(p+".type", s.Type, sinkTypes)
		v.sinkSection(p, s)
	}
}

// sinkSection checks the section of the sink's type, and that no other type's section is set.
func (v *checker) sinkSection(p string, s Sink) {
	sections := map[string]bool{"s3": s.S3 != nil, "http": s.HTTP != nil, "opensearch": s.OpenSearch != nil, "firehose": s.Firehose != nil, "file": s.File != nil}
	for name, set := range sections {
		if set && name != s.Type && slices.Contains(sinkTypes, s.Type) {
			v.add(p+"."+name, "", fmt.Sprintf("is set but the sink's type is %q: remove it or change the type", s.Type))
		}
	}
	switch s.Type {
	case "s3":
		if s.S3 == nil {
			v.missing(p+".s3", "a sink of type s3 needs an s3 section with at least its bucket")
			return
		}
		v.s3(p+".s3", *s.S3)
	case "http":
		if s.HTTP == nil {
			v.missing(p+".http", "a sink of type http needs an http section with at least its url")
			return
		}
		v.sinkHTTP(p+".http", *s.HTTP)
	case "opensearch":
		if s.OpenSearch == nil {
			v.missing(p+".opensearch", "a sink of type opensearch needs an opensearch section")
			return
		}
		v.sinkOpenSearch(p+".opensearch", *s.OpenSearch)
	case "firehose":
		if s.Firehose == nil {
			v.missing(p+".firehose", "a sink of type firehose needs a firehose section with its delivery stream")
			return
		}
		v.sinkFirehose(p+".firehose", *s.Firehose)
	case "file":
		if s.File == nil {
			d := FileDefaults()
			s.File = &d
		}
		v.sinkFile(p+".file", *s.File)
	}
}

func (v *checker) s3(p string, s S3Sink) {
	switch {
	case s.Bucket == "":
		v.missing(p+".bucket", "name the S3 bucket to write to")
	case !bucketNameRe.MatchString(s.Bucket):
		v.add(p+".bucket", strconv.Quote(s.Bucket), "is not an S3 bucket name: 3 to 63 characters from a-z, 0-9, . - starting and ending with a letter or digit")
	}
	// The s3 sink's own list: backups (the shared compressions list) take GZIP and UNCOMPRESSED only.
	s3Compressions := []string{"GZIP", "SNAPPY", "ZSTD", "UNCOMPRESSED"}
	dfc := s.DataFormatConversion
	dp := s.DynamicPartitioning
	dpOn := dp != nil && dp.Enabled
	v.oneOf(p+".compression", s.Compression, s3Compressions)
	if dfc != nil && !v.bad(p+".compression") && s.Compression != "UNCOMPRESSED" {
		v.add(p+".compression", strconv.Quote(s.Compression), "is not allowed with Parquet output: use UNCOMPRESSED (Parquet compresses its columns with Snappy)")
	}
	if dfc != nil {
		if h := s.BufferingHints.SizeInMBs; h < 64 || h > 128 {
			v.add(p+".buffering_hints.size_in_mbs", strconv.Itoa(h), "is out of range: with Parquet, size_in_mbs must be 64 to 128")
		}
	}
	v.intRange(p+".buffering_hints.size_in_mbs", s.BufferingHints.SizeInMBs, 1, 128)
	if dpOn && s.BufferingHints.IntervalInSeconds == 0 {
		v.add(p+".buffering_hints.interval_in_seconds", "0", "is out of range: with dynamic partitioning allowed 1 to 900 (there is no zero buffering with it, as in Firehose)")
	}
	v.intRange(p+".buffering_hints.interval_in_seconds", s.BufferingHints.IntervalInSeconds, 0, 900)
	v.intRange(p+".max_uploads", s.MaxUploads, 1, 64)
	v.retry(p+".retry", s.Retry)
	if s.Delivery != "" { // "": at_least_once, for sections built without S3Defaults
		v.oneOf(p+".delivery", s.Delivery, []string{DeliveryAtLeastOnce, DeliveryExactlyOnce})
	}

	// Prefixes, with Firehose's rules (sinks/s3/prefix holds them for the sink as well).
	data, err := prefix.Parse(s.Prefix, prefix.Rules{
		PartitionKeys: dpOn,
		Queries: func(key string) bool {
			if dp == nil {
				return false
			}
			_, ok := dp.Queries[key]
			return ok
		},
	})
	switch {
	case err != nil:
		v.add(p+".prefix", strconv.Quote(s.Prefix), "is not a valid prefix: "+err.Error())
	case dpOn && len(data.Keys()) == 0:
		v.add(p+".prefix", strconv.Quote(s.Prefix), "uses no partition key: with dynamic_partitioning.enabled it must use !{partitionKeyFromQuery:key} or !{partitionKeyFromLambda:key}")
	}
	switch ep := s.ErrorOutputPrefix; {
	case ep == "" && (dpOn || strings.Contains(s.Prefix, "!{")):
		v.missing(p+".error_output_prefix", "required when the prefix has expressions or dynamic partitioning is enabled (Firehose's rule): records that cannot be delivered go there, e.g. \"errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/\"")
	case strings.Contains(ep, "!{"):
		if _, err := prefix.Parse(ep, prefix.Rules{Error: true}); err != nil {
			v.add(p+".error_output_prefix", strconv.Quote(ep), "is not a valid error output prefix: "+err.Error())
		}
	}

	if dpOn {
		dpp := p + ".dynamic_partitioning"
		for _, name := range slices.Sorted(maps.Keys(dp.Queries)) {
			key := dpp + ".queries." + name
			q := dp.Queries[name]
			switch {
			case !prefix.ValidKeyName(name):
				v.add(key, "", "is not a partition key name: use letters, digits, _ and - only")
			case strings.TrimSpace(q) == "":
				v.missing(key, "write the jq query that gives the key's value, e.g. \".event_type\"")
			default:
				parsed, err := gojq.Parse(q)
				if err == nil {
					_, err = gojq.Compile(parsed)
				}
				if err != nil {
					v.add(key, strconv.Quote(q), "is not a valid jq query: "+err.Error())
				} else if data != nil && !slices.Contains(data.Keys(), prefix.Key{Name: name}) {
					v.add(key, strconv.Quote(q), "is not used by the prefix: use it with !{partitionKeyFromQuery:"+name+"} or remove it")
				}
			}
		}
		if dp.MaxActivePartitions != 0 {
			v.intRange(dpp+".max_active_partitions", dp.MaxActivePartitions, 1, 5000)
		}
		if dp.MaxBufferedMBs != 0 {
			if size := s.BufferingHints.SizeInMBs; !v.bad(p+".buffering_hints.size_in_mbs") && dp.MaxBufferedMBs < size {
				v.add(dpp+".max_buffered_mbs", strconv.Itoa(dp.MaxBufferedMBs), fmt.Sprintf("is out of range: allowed buffering_hints.size_in_mbs (%d) or more, so one partition can fill its buffer", size))
			}
			v.intRange(dpp+".max_buffered_mbs", dp.MaxBufferedMBs, 1, 65536)
		}
	}

	if dfc != nil {
		dp := p + ".data_format_conversion"
		v.oneOf(dp+".output_format", dfc.OutputFormat, []string{"PARQUET"})
		if len(dfc.Schema) == 0 {
			v.missing(dp+".schema", "list the columns, each with name, type and required")
		}
		types := []string{"string", "int64", "double", "boolean", "timestamp_millis"}
		seen := map[string]int{}
		for i, c := range dfc.Schema {
			cp := fmt.Sprintf("%s.schema[%d]", dp, i)
			switch j, dup := seen[c.Name]; {
			case c.Name == "":
				v.missing(cp+".name", "name the column")
			case !columnNameRe.MatchString(c.Name):
				v.add(cp+".name", strconv.Quote(c.Name), "is not a column name: a letter or _ followed by letters, digits or _")
			case dup:
				v.add(cp+".name", strconv.Quote(c.Name), fmt.Sprintf("is already the name of schema[%d]: names must be unique", j))
			default:
				seen[c.Name] = i
			}
			v.oneOf(cp+".type", c.Type, types)
		}
	}
}

func (v *checker) retry(p string, r Retry) {
	v.durationMin(p+".initial_backoff", r.InitialBackoff, time.Nanosecond)
	v.durationMin(p+".max_backoff", r.MaxBackoff, time.Nanosecond)
	if !v.bad(p+".initial_backoff") && !v.bad(p+".max_backoff") && r.MaxBackoff < r.InitialBackoff {
		v.add(p+".max_backoff", r.MaxBackoff.String(), fmt.Sprintf("is out of range: allowed %s.initial_backoff (%s) or more", p, r.InitialBackoff))
	}
	if r.MaxElapsed < 0 {
		v.negative(p+".max_elapsed", r.MaxElapsed)
	}
}

// walkValues calls fn for every leaf field of v (a struct) with its dotted key, entering nested
// structs, non-nil pointers to structs and slices of structs (as key[i]).
func walkValues(v reflect.Value, prefix string, fn func(key string, f reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		key := joinKey(prefix, tagName(t.Field(i)))
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.Struct:
			walkValues(f, key, fn)
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
			if !f.IsNil() {
				walkValues(f.Elem(), key, fn)
			}
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			for j := range f.Len() {
				walkValues(f.Index(j), fmt.Sprintf("%s[%d]", key, j), fn)
			}
		default:
			fn(key, f)
		}
	}
}

// exactlyOnceNeedsOrder refuses parallel lanes with an exactly-once sink: its objects each hold
// a run of one shard's records in shard order, which lanes handling one shard's batches at once
// would break.
func (v *checker) exactlyOnceNeedsOrder(p Processing, sinks []Sink) {
	if p.ParallelizationFactor <= 1 {
		return
	}
	for i, s := range sinks {
		if s.S3 != nil && s.S3.ExactlyOnce() {
			v.add("processing.parallelization_factor", strconv.Itoa(p.ParallelizationFactor),
				fmt.Sprintf("is out of range: must be 1 with sinks[%d] (%s) set to delivery: exactly_once, which needs each shard's records in order", i, s.Name))
			return
		}
	}
}

// exactlyOnceNeedsLocalHandlers refuses a handler that calls out (lambda, http) in front of an
// exactly-once sink. Exactly-once delivery skips, after a crash, what an earlier object's
// positions cover; a function that gave a record up on one reading (its dead letter not yet
// stored when the worker died) and accepts it on the next would have that record skipped, in
// neither place. Local handlers decide the same way on every reading.
func (v *checker) exactlyOnceNeedsLocalHandlers(p Processing, sinks []Sink) {
	for i, s := range sinks {
		if s.S3 == nil || !s.S3.ExactlyOnce() {
			continue
		}
		for j, h := range p.Handlers {
			if h.Type == HandlerLambda || h.Type == HandlerHTTP {
				v.add(fmt.Sprintf("sinks[%d].s3.delivery", i), DeliveryExactlyOnce,
					fmt.Sprintf("is not allowed with processing.handlers[%d] (type %s): a function may decide differently each time a record is read, and exactly-once delivery relies on the same outcome every time; use at_least_once, or only json, filter and enrich handlers", j, h.Type))
				break
			}
		}
	}
}

// stallAboveBuffering refuses a stall timeout no longer than a sink's buffering interval: records
// waiting for their interval would look stalled.
func (v *checker) stallAboveBuffering(stall time.Duration, sinks []Sink) {
	if stall <= 0 || v.bad("leases.stall_timeout") {
		return
	}
	for i, s := range sinks {
		var interval int
		switch {
		case s.S3 != nil:
			interval = s.S3.BufferingHints.IntervalInSeconds
		case s.HTTP != nil:
			interval = s.HTTP.BufferingHints.IntervalInSeconds
		case s.OpenSearch != nil:
			interval = s.OpenSearch.BufferingHints.IntervalInSeconds
		case s.Firehose != nil:
			interval = s.Firehose.BufferingHints.IntervalInSeconds
		}
		if d := time.Duration(interval) * time.Second; d > 0 && stall <= d {
			v.add("leases.stall_timeout", stall.String(), fmt.Sprintf("is out of range: must be longer than sinks[%d]'s buffering interval (%s), or 0 (off)", i, d))
			return
		}
	}
}

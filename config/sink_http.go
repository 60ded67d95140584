package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shardhose/shardhose/internal/lazyregexp"
)

// HTTPSink configures a sink of type http: Amazon Data Firehose's HTTP endpoint destination
// re-created. Records are POSTed in Firehose's request format to URL, retried for
// RetryDurationInSeconds, then written to the S3 backup in Firehose's error-record format. Keys
// follow Firehose's API (EndpointConfiguration, RequestConfiguration, BufferingHints,
// RetryOptions, S3BackupMode) in snake case.
type HTTPSink struct {
	// URL is the endpoint: http:// or https:// with a host, up to 1,000 characters, no
	// credentials in it (use the access key). Required.
	URL string `koanf:"url"`
	// Name names the endpoint in logs and error messages (Firehose's EndpointConfiguration.Name),
	// up to 256 characters. Optional.
	Name string `koanf:"name"`
	// The access key sent as X-Amz-Firehose-Access-Key (up to 4,096 bytes) comes from at most
	// one of AccessKey, AccessKeyEnv (the name of an environment variable holding it) and
	// AccessKeyFile (a file holding it; a trailing newline is ignored). None: no header.
	AccessKey     HTTPAccessKey `koanf:"access_key"`
	AccessKeyEnv  string        `koanf:"access_key_env"`
	AccessKeyFile string        `koanf:"access_key_file"`
	// CommonAttributes are sent with every request in X-Amz-Firehose-Common-Attributes as
	// {"commonAttributes":{...}}: names 1 to 256 characters, values up to 1,024.
	CommonAttributes map[string]string `koanf:"common_attributes"`
	// ContentEncoding is NONE or GZIP (the body is gzipped and Content-Encoding: gzip is set).
	ContentEncoding string `koanf:"content_encoding"`
	// BufferingHints: size 1 to 64 MiB, interval 0 to 900 s (Firehose's ranges for HTTP
	// endpoints). A request also goes out at 10,000 records.
	BufferingHints BufferingHints `koanf:"buffering_hints"`
	// RetryDurationInSeconds is how long a failed request is retried (0 to 7,200; 0 means one
	// attempt) before its records go to the S3 backup.
	RetryDurationInSeconds int `koanf:"retry_duration_in_seconds"`
	// RequestTimeout is how long the endpoint has to answer one request (1s to 15m; Firehose
	// gives 3 minutes). A request that times out is retried within the retry duration.
	RequestTimeout time.Duration `koanf:"request_timeout"`
	// MaxInFlight caps the requests (each with its retries) under way at once, 1 to 64.
	MaxInFlight int `koanf:"max_in_flight"`
	// SourceARN is sent as X-Amz-Firehose-Source-Arn instead of the stream's ARN. Optional.
	SourceARN string `koanf:"source_arn"`
	// S3BackupMode is FailedDataOnly (the default) or AllData (every batch is also stored raw in
	// the backup bucket, and acknowledged only once both copies are stored).
	S3BackupMode string     `koanf:"s3_backup_mode"`
	S3Backup     HTTPBackup `koanf:"s3_backup"`
}

// HTTPBackup is where an http sink stores what the endpoint did not take (under the folder
// http-endpoint-failed/) and, in AllData mode, a copy of everything.
type HTTPBackup struct {
	// Bucket must exist. Required.
	Bucket string `koanf:"bucket"`
	// Prefix goes before every backup object's key, e.g. "http-backup/".
	Prefix string `koanf:"prefix"`
	// Compression is GZIP or UNCOMPRESSED (Firehose's default for backups).
	Compression string `koanf:"compression"`
}

// HTTPAccessKey is a secret: it prints, logs and formats as "[redacted]" (or "" when empty),
// so a configuration dumped with %+v or handed to slog does not leak it. Use string(k) to send it.
type HTTPAccessKey string

const redacted = "[redacted]"

// String returns "[redacted]", or "" when no key is set.
func (k HTTPAccessKey) String() string {
	if k == "" {
		return ""
	}
	return redacted
}

// GoString redacts %#v the same way.
func (k HTTPAccessKey) GoString() string { return strconv.Quote(k.String()) }

// LogValue redacts the key in log/slog output.
func (k HTTPAccessKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText redacts the key when the configuration is written out (JSON, YAML).
func (k HTTPAccessKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// HTTP endpoint limits of Firehose that the configuration checks.
const (
	// HTTPMaxAccessKeyBytes is the longest access key Firehose sends.
	HTTPMaxAccessKeyBytes = 4096
	// HTTPMaxURLLength is the longest endpoint URL Firehose accepts.
	HTTPMaxURLLength = 1000
	// HTTPMaxRetryDuration is the longest retry duration Firehose allows (7,200 s).
	HTTPMaxRetryDuration = 7200
)

// Allowed values of the http sink's enumerated keys.
var (
	httpContentEncodings = []string{"NONE", "GZIP"}
	httpBackupModes      = []string{"FailedDataOnly", "AllData"}
	envVarNameRe         = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// HTTPDefaults are applied to every http sink section for keys it leaves out: Firehose's
// defaults (5 MiB or 300 s buffers, 300 s retry duration, 3 minutes to answer, failed data only
// to the backup).
func HTTPDefaults() HTTPSink {
	return HTTPSink{
		ContentEncoding:        "NONE",
		BufferingHints:         BufferingHints{SizeInMBs: 5, IntervalInSeconds: 300},
		RetryDurationInSeconds: 300,
		RequestTimeout:         3 * time.Minute,
		MaxInFlight:            4,
		S3BackupMode:           "FailedDataOnly",
		S3Backup:               HTTPBackup{Compression: "UNCOMPRESSED"},
	}
}

func (v *checker) sinkHTTP(p string, s HTTPSink) {
	v.httpURL(p+".url", s.URL)
	if n := len(s.Name); n > 256 || (n > 0 && strings.TrimSpace(s.Name) == "") {
		v.add(p+".name", strconv.Quote(s.Name), "is not an endpoint name: up to 256 characters, not only spaces")
	}

	keySources := 0
	for _, set := range []bool{s.AccessKey != "", s.AccessKeyEnv != "", s.AccessKeyFile != ""} {
		if set {
			keySources++
		}
	}
	if keySources > 1 {
		v.add(p+".access_key", "", "is given more than one way: set at most one of access_key, access_key_env and access_key_file")
	}
	if len(s.AccessKey) > HTTPMaxAccessKeyBytes {
		v.add(p+".access_key", "", fmt.Sprintf("is %d bytes long: allowed up to %d", len(s.AccessKey), HTTPMaxAccessKeyBytes))
	}
	if s.AccessKeyEnv != "" && !envVarNameRe.MatchString(s.AccessKeyEnv) {
		v.add(p+".access_key_env", strconv.Quote(s.AccessKeyEnv), "is not an environment variable name: letters, digits and _, not starting with a digit")
	}
	if s.AccessKeyFile != "" && strings.TrimSpace(s.AccessKeyFile) != s.AccessKeyFile {
		v.add(p+".access_key_file", strconv.Quote(s.AccessKeyFile), "starts or ends with spaces: write the file's path exactly")
	}

	for name, value := range s.CommonAttributes {
		key := p + ".common_attributes." + name
		switch {
		case len(name) == 0 || len(name) > 256:
			v.add(key, "", "is not an attribute name: 1 to 256 characters")
		case len(value) > 1024:
			v.add(key, "", fmt.Sprintf("is %d characters long: attribute values are allowed up to 1024", len(value)))
		}
	}

	v.oneOf(p+".content_encoding", s.ContentEncoding, httpContentEncodings)
	v.intRange(p+".buffering_hints.size_in_mbs", s.BufferingHints.SizeInMBs, 1, 64)
	v.intRange(p+".buffering_hints.interval_in_seconds", s.BufferingHints.IntervalInSeconds, 0, 900)
	v.intRange(p+".retry_duration_in_seconds", s.RetryDurationInSeconds, 0, HTTPMaxRetryDuration)
	v.durationRange(p+".request_timeout", s.RequestTimeout, time.Second, 15*time.Minute, "Firehose gives an endpoint 3 minutes")
	v.intRange(p+".max_in_flight", s.MaxInFlight, 1, 64)
	if s.SourceARN != "" && !strings.HasPrefix(s.SourceARN, "arn:") {
		v.add(p+".source_arn", strconv.Quote(s.SourceARN), "is not an ARN: want arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, e.g. the stream's ARN")
	}
	v.oneOf(p+".s3_backup_mode", s.S3BackupMode, httpBackupModes)

	b := s.S3Backup
	switch {
	case b.Bucket == "":
		v.missing(p+".s3_backup.bucket", "name the S3 bucket where data the endpoint does not take is stored (Firehose requires a backup bucket)")
	case !bucketNameRe.MatchString(b.Bucket):
		v.add(p+".s3_backup.bucket", strconv.Quote(b.Bucket), "is not an S3 bucket name: 3 to 63 characters from a-z, 0-9, . - starting and ending with a letter or digit")
	}
	switch {
	case strings.Contains(b.Prefix, "!{"):
		v.add(p+".s3_backup.prefix", strconv.Quote(b.Prefix), "has a prefix expression (!{...}): backup prefixes are literal")
	case strings.HasPrefix(b.Prefix, "/"):
		v.add(p+".s3_backup.prefix", strconv.Quote(b.Prefix), "starts with /: S3 keys do not, so the objects would land under an empty folder")
	case len(b.Prefix) > 450:
		v.add(p+".s3_backup.prefix", strconv.Quote(b.Prefix), "is out of range: allowed up to 450 characters (Firehose's 512 with the folder and time appended)")
	}
	v.oneOf(p+".s3_backup.compression", b.Compression, compressions)
}

// httpURL checks an endpoint URL: http or https, a host, no credentials or fragment.
func (v *checker) httpURL(key, raw string) {
	if raw == "" {
		v.missing(key, "set the endpoint's URL, e.g. https://collector.example.com/firehose")
		return
	}
	if len(raw) > HTTPMaxURLLength {
		v.add(key, "", fmt.Sprintf("is %d characters long: allowed up to %d", len(raw), HTTPMaxURLLength))
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.add(key, strconv.Quote(raw), "is not an endpoint URL: want http:// or https:// with a host, e.g. https://collector.example.com/firehose")
	case u.User != nil:
		v.add(key, "", "has credentials in it, which would be logged: put the secret in access_key, access_key_env or access_key_file")
	case u.Fragment != "":
		v.add(key, strconv.Quote(raw), "has a #fragment, which is never sent: remove it")
	}
}

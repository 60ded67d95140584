package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

const httpExample = "../configs/examples/sink_http.yaml"

// validHTTP is the smallest valid http section: the defaults, a URL and a backup bucket.
func validHTTP() HTTPSink {
	s := HTTPDefaults()
	s.URL = "https://collector.example.com/firehose"
	s.S3Backup.Bucket = "http-backup"
	return s
}

// checkHTTP returns the keys sinkHTTP finds problems with.
func checkHTTP(s HTTPSink) Errors {
	v := &checker{seen: map[string]bool{}}
	v.sinkHTTP("sinks[0].http", s)
	return v.errs
}

func TestHTTPRules(t *testing.T) {
	const p = "sinks[0].http."
	with := func(f func(*HTTPSink)) HTTPSink { s := validHTTP(); f(&s); return s }
	cases := []struct {
		name string
		s    HTTPSink
		keys []string // nil: valid
	}{
		{"minimal", validHTTP(), nil},
		{"http and port", with(func(s *HTTPSink) { s.URL = "http://127.0.0.1:8080/ingest?token=x" }), nil},
		{"everything set", with(func(s *HTTPSink) {
			s.Name = "collector"
			s.AccessKeyEnv = "COLLECTOR_KEY"
			s.CommonAttributes = map[string]string{"env": "prod", "team": ""}
			s.ContentEncoding = "GZIP"
			s.BufferingHints = BufferingHints{SizeInMBs: 64, IntervalInSeconds: 0}
			s.RetryDurationInSeconds = 7200
			s.RequestTimeout = 15 * time.Minute
			s.MaxInFlight = 64
			s.SourceARN = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
			s.S3BackupMode = "AllData"
			s.S3Backup.Prefix = "backup/"
			s.S3Backup.Compression = "GZIP"
		}), nil},
		{"access key 4096 bytes", with(func(s *HTTPSink) { s.AccessKey = HTTPAccessKey(strings.Repeat("k", 4096)) }), nil},
		{"retry duration 0", with(func(s *HTTPSink) { s.RetryDurationInSeconds = 0 }), nil},

		{"no url", with(func(s *HTTPSink) { s.URL = "" }), []string{p + "url"}},
		{"ftp url", with(func(s *HTTPSink) { s.URL = "ftp://x/y" }), []string{p + "url"}},
		{"url without host", with(func(s *HTTPSink) { s.URL = "https:///path" }), []string{p + "url"}},
		{"url with credentials", with(func(s *HTTPSink) { s.URL = "https://user:pw@x.example.com/" }), []string{p + "url"}},
		{"url with fragment", with(func(s *HTTPSink) { s.URL = "https://x.example.com/#f" }), []string{p + "url"}},
		{"url too long", with(func(s *HTTPSink) { s.URL = "https://x.example.com/" + strings.Repeat("a", 1000) }), []string{p + "url"}},
		{"name too long", with(func(s *HTTPSink) { s.Name = strings.Repeat("n", 257) }), []string{p + "name"}},
		{"name only spaces", with(func(s *HTTPSink) { s.Name = "  " }), []string{p + "name"}},
		{"two key sources", with(func(s *HTTPSink) { s.AccessKey = "k"; s.AccessKeyFile = "/run/secrets/k" }), []string{p + "access_key"}},
		{"access key too long", with(func(s *HTTPSink) { s.AccessKey = HTTPAccessKey(strings.Repeat("k", 4097)) }), []string{p + "access_key"}},
		{"bad env var name", with(func(s *HTTPSink) { s.AccessKeyEnv = "1KEY" }), []string{p + "access_key_env"}},
		{"key file with spaces", with(func(s *HTTPSink) { s.AccessKeyFile = " /k " }), []string{p + "access_key_file"}},
		{"attribute value too long", with(func(s *HTTPSink) { s.CommonAttributes = map[string]string{"a": strings.Repeat("v", 1025)} }), []string{p + "common_attributes.a"}},
		{"attribute without name", with(func(s *HTTPSink) { s.CommonAttributes = map[string]string{"": "v"} }), []string{p + "common_attributes."}},
		{"encoding lower case", with(func(s *HTTPSink) { s.ContentEncoding = "gzip" }), []string{p + "content_encoding"}},
		{"encoding missing", with(func(s *HTTPSink) { s.ContentEncoding = "" }), []string{p + "content_encoding"}},
		{"size 0", with(func(s *HTTPSink) { s.BufferingHints.SizeInMBs = 0 }), []string{p + "buffering_hints.size_in_mbs"}},
		{"size 65", with(func(s *HTTPSink) { s.BufferingHints.SizeInMBs = 65 }), []string{p + "buffering_hints.size_in_mbs"}},
		{"interval 901", with(func(s *HTTPSink) { s.BufferingHints.IntervalInSeconds = 901 }), []string{p + "buffering_hints.interval_in_seconds"}},
		{"interval negative", with(func(s *HTTPSink) { s.BufferingHints.IntervalInSeconds = -1 }), []string{p + "buffering_hints.interval_in_seconds"}},
		{"retry duration 7201", with(func(s *HTTPSink) { s.RetryDurationInSeconds = 7201 }), []string{p + "retry_duration_in_seconds"}},
		{"retry duration negative", with(func(s *HTTPSink) { s.RetryDurationInSeconds = -1 }), []string{p + "retry_duration_in_seconds"}},
		{"timeout 0", with(func(s *HTTPSink) { s.RequestTimeout = 0 }), []string{p + "request_timeout"}},
		{"timeout negative", with(func(s *HTTPSink) { s.RequestTimeout = -time.Second }), []string{p + "request_timeout"}},
		{"timeout 16m", with(func(s *HTTPSink) { s.RequestTimeout = 16 * time.Minute }), []string{p + "request_timeout"}},
		{"in flight 0", with(func(s *HTTPSink) { s.MaxInFlight = 0 }), []string{p + "max_in_flight"}},
		{"in flight 65", with(func(s *HTTPSink) { s.MaxInFlight = 65 }), []string{p + "max_in_flight"}},
		{"source arn", with(func(s *HTTPSink) { s.SourceARN = "my-stream" }), []string{p + "source_arn"}},
		{"backup mode", with(func(s *HTTPSink) { s.S3BackupMode = "FailedDocumentsOnly" }), []string{p + "s3_backup_mode"}},
		{"no bucket", with(func(s *HTTPSink) { s.S3Backup.Bucket = "" }), []string{p + "s3_backup.bucket"}},
		{"bucket upper case", with(func(s *HTTPSink) { s.S3Backup.Bucket = "Backup" }), []string{p + "s3_backup.bucket"}},
		{"prefix expression", with(func(s *HTTPSink) { s.S3Backup.Prefix = "!{timestamp:yyyy}/" }), []string{p + "s3_backup.prefix"}},
		{"prefix leading slash", with(func(s *HTTPSink) { s.S3Backup.Prefix = "/backup/" }), []string{p + "s3_backup.prefix"}},
		{"prefix too long", with(func(s *HTTPSink) { s.S3Backup.Prefix = strings.Repeat("p", 451) }), []string{p + "s3_backup.prefix"}},
		{"backup compression", with(func(s *HTTPSink) { s.S3Backup.Compression = "ZIP" }), []string{p + "s3_backup.compression"}},
		{"empty section", HTTPSink{}, []string{
			p + "url", p + "content_encoding", p + "buffering_hints.size_in_mbs", p + "request_timeout",
			p + "max_in_flight", p + "s3_backup_mode", p + "s3_backup.bucket", p + "s3_backup.compression",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := checkHTTP(c.s)
			got := keysOf(errs)
			want := slices.Clone(c.keys)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems with %v, want %v:\n%v", got, want, errs)
			}
		})
	}
}

// The access key never appears in a message, and the messages name the key and what is allowed.
func TestHTTPMessages(t *testing.T) {
	s := validHTTP()
	s.AccessKey = HTTPAccessKey("sekrit-" + strings.Repeat("k", 4096))
	s.AccessKeyEnv = "X"
	s.BufferingHints.SizeInMBs = 100
	errs := checkHTTP(s)
	msg := errs.Error()
	if strings.Contains(msg, "sekrit") {
		t.Errorf("a message shows the access key:\n%s", msg)
	}
	for _, want := range []string{
		"sinks[0].http.access_key: is given more than one way",
		"sinks[0].http.buffering_hints.size_in_mbs: 100 is out of range: allowed 1 to 64",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("messages lack %q:\n%s", want, msg)
		}
	}
}

func TestHTTPAccessKeyIsRedacted(t *testing.T) {
	s := validHTTP()
	s.AccessKey = "sekrit-key"
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "http", s, "key", s.AccessKey)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "http", s, "key", s.AccessKey)
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s.AccessKey, s.AccessKey),
		logged.String(),
		string(j),
	} {
		if strings.Contains(out, "sekrit") {
			t.Errorf("the access key shows in %s", out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("no [redacted] in %s", out)
		}
	}
	if string(s.AccessKey) != "sekrit-key" {
		t.Error("string(key) must give the key itself")
	}
	if HTTPAccessKey("").String() != "" {
		t.Error("an empty key prints as [redacted]")
	}
}

// The example snippet decodes onto HTTPDefaults, shows every default, names every key, and
// passes the section's check.
func TestHTTPExample(t *testing.T) {
	cfg, problems, err := decode(LoadOptions{Path: httpExample, Environ: noEnv})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode %s: %v %v", httpExample, err, problems)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].HTTP == nil || cfg.Sinks[0].Type != "http" {
		t.Fatalf("sinks = %+v, want one http sink", cfg.Sinks)
	}
	got := *cfg.Sinks[0].HTTP
	if errs := checkHTTP(got); len(errs) > 0 {
		t.Errorf("the example's http section has problems:\n%v", errs)
	}
	want := HTTPDefaults()
	want.URL = got.URL
	want.S3Backup.Bucket = got.S3Backup.Bucket
	if len(got.CommonAttributes) == 0 {
		got.CommonAttributes = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the example's values are not the defaults:\n got %+v\nwant %+v", got, want)
	}

	b, err := os.ReadFile(httpExample)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var inFile []string
	rawKeys(raw, "", &inFile)
	var inType []string
	typeKeys(reflect.TypeFor[HTTPSink](), "sinks[].http", &inType)
	for _, k := range inType {
		// A map with no entries has no leaf; its key is still written out.
		if !slices.Contains(inFile, k) && !(k == "sinks[].http.common_attributes" && bytes.Contains(b, []byte("common_attributes: {}"))) {
			t.Errorf("key %s is not in %s", k, httpExample)
		}
	}
	for _, k := range inFile {
		if strings.HasPrefix(k, "sinks[].http.") && !slices.Contains(inType, k) {
			t.Errorf("%s has %s, which is not a key", httpExample, k)
		}
	}
}

func TestHTTPFromEnvironment(t *testing.T) {
	cfg, problems, err := decode(LoadOptions{Environ: envOf(
		"SHARDHOSE_SINKS__0__NAME=collector",
		"SHARDHOSE_SINKS__0__TYPE=http",
		"SHARDHOSE_SINKS__0__HTTP__URL=https://collector.example.com/",
		"SHARDHOSE_SINKS__0__HTTP__ACCESS_KEY_ENV=COLLECTOR_KEY",
		"SHARDHOSE_SINKS__0__HTTP__COMMON_ATTRIBUTES__ENV=prod",
		"SHARDHOSE_SINKS__0__HTTP__REQUEST_TIMEOUT=90s",
		"SHARDHOSE_SINKS__0__HTTP__S3_BACKUP__BUCKET=http-backup",
	)})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode: %v %v", err, problems)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].HTTP == nil {
		t.Fatalf("sinks = %+v", cfg.Sinks)
	}
	want := validHTTP()
	want.URL = "https://collector.example.com/"
	want.AccessKeyEnv = "COLLECTOR_KEY"
	want.CommonAttributes = map[string]string{"env": "prod"}
	want.RequestTimeout = 90 * time.Second
	if got := *cfg.Sinks[0].HTTP; !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n got %+v\nwant %+v", got, want)
	}
}

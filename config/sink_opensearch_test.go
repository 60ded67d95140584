package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

const openSearchExample = "../configs/examples/sink_opensearch.yaml"

// validOpenSearch returns an opensearch section that passes its checks.
func validOpenSearch() OpenSearchSink {
	s := OpenSearchDefaults()
	s.Endpoints = []string{"https://search.example.com"}
	s.Index = "events"
	s.S3Backup.Bucket = "my-backup"
	return s
}

// checkOpenSearch runs the section's checks alone and returns the problems by key.
func checkOpenSearch(s OpenSearchSink) map[string]FieldError {
	v := &checker{seen: map[string]bool{}}
	v.sinkOpenSearch("sinks[0].opensearch", s)
	out := map[string]FieldError{}
	for _, e := range v.errs {
		out[strings.TrimPrefix(e.Key, "sinks[0].opensearch.")] = e
	}
	return out
}

func TestOpenSearchDefaultsPass(t *testing.T) {
	if errs := checkOpenSearch(validOpenSearch()); len(errs) > 0 {
		t.Fatalf("problems with a valid section: %v", errs)
	}
}

func TestOpenSearchChecks(t *testing.T) {
	cases := []struct {
		name    string
		mod     func(*OpenSearchSink)
		key     string // "" = no problem expected
		message string // part of the problem
	}{
		{"no endpoints", func(s *OpenSearchSink) { s.Endpoints = nil }, "endpoints", "missing"},
		{"endpoint without scheme", func(s *OpenSearchSink) { s.Endpoints = []string{"search.example.com:9200"} }, "endpoints[0]", "not an endpoint URL"},
		{"endpoint with credentials", func(s *OpenSearchSink) { s.Endpoints = []string{"https://u:p@h:9200"} }, "endpoints[0]", "not an endpoint URL"},
		{"second endpoint empty", func(s *OpenSearchSink) { s.Endpoints = []string{"http://a:9200", ""} }, "endpoints[1]", "missing"},
		{"endpoint with path", func(s *OpenSearchSink) { s.Endpoints = []string{"https://proxy.example.com/opensearch"} }, "", ""},
		{"no index", func(s *OpenSearchSink) { s.Index = "" }, "index", "missing"},
		{"upper-case index", func(s *OpenSearchSink) { s.Index = "Events" }, "index", "lower case"},
		{"index with space", func(s *OpenSearchSink) { s.Index = "my events" }, "index", "may not contain"},
		{"index with colon", func(s *OpenSearchSink) { s.Index = "a:b" }, "index", "may not contain"},
		{"index starting with _", func(s *OpenSearchSink) { s.Index = "_events" }, "index", "may not start"},
		{"index starting with -", func(s *OpenSearchSink) { s.Index = "-events" }, "index", "may not start"},
		{"index of 80", func(s *OpenSearchSink) { s.Index = strings.Repeat("a", 80) }, "", ""},
		{"index of 81", func(s *OpenSearchSink) { s.Index = strings.Repeat("a", 81) }, "index", "1 to 80"},
		{"type name", func(s *OpenSearchSink) { s.TypeName = "_doc" }, "type_name", "not starting with _"},
		{"type name ok", func(s *OpenSearchSink) { s.TypeName = "event" }, "", ""},
		{"type name on serverless", func(s *OpenSearchSink) {
			s.TypeName = "event"
			s.Auth.Type = "sigv4"
			s.Auth.Service = "aoss"
		}, "type_name", "Serverless has no types"},
		{"rotation", func(s *OpenSearchSink) { s.IndexRotation = "Daily" }, "index_rotation", "NoRotation, OneHour, OneDay, OneWeek or OneMonth"},
		{"document id format", func(s *OpenSearchSink) { s.DocumentIDOptions.DefaultDocumentIDFormat = "RANDOM" }, "document_id_options.default_document_id_format", "FIREHOSE_DEFAULT or NO_DOCUMENT_ID"},
		{"document id field", func(s *OpenSearchSink) { s.DocumentIDField = "a\nb" }, "document_id_field", "not a field name"},
		{"size 0", func(s *OpenSearchSink) { s.BufferingHints.SizeInMBs = 0 }, "buffering_hints.size_in_mbs", "allowed 1 to 100"},
		{"size 1", func(s *OpenSearchSink) { s.BufferingHints.SizeInMBs = 1 }, "", ""},
		{"size 100", func(s *OpenSearchSink) { s.BufferingHints.SizeInMBs = 100 }, "", ""},
		{"size 101", func(s *OpenSearchSink) { s.BufferingHints.SizeInMBs = 101 }, "buffering_hints.size_in_mbs", "allowed 1 to 100"},
		{"interval 59", func(s *OpenSearchSink) { s.BufferingHints.IntervalInSeconds = 59 }, "buffering_hints.interval_in_seconds", "allowed 60 to 900"},
		{"interval 60", func(s *OpenSearchSink) { s.BufferingHints.IntervalInSeconds = 60 }, "", ""},
		{"interval 900", func(s *OpenSearchSink) { s.BufferingHints.IntervalInSeconds = 900 }, "", ""},
		{"interval 901", func(s *OpenSearchSink) { s.BufferingHints.IntervalInSeconds = 901 }, "buffering_hints.interval_in_seconds", "allowed 60 to 900"},
		{"retry -1", func(s *OpenSearchSink) { s.RetryDurationInSeconds = -1 }, "retry_duration_in_seconds", "allowed 0 to 7200"},
		{"retry 0", func(s *OpenSearchSink) { s.RetryDurationInSeconds = 0 }, "", ""},
		{"retry 7200", func(s *OpenSearchSink) { s.RetryDurationInSeconds = 7200 }, "", ""},
		{"retry 7201", func(s *OpenSearchSink) { s.RetryDurationInSeconds = 7201 }, "retry_duration_in_seconds", "allowed 0 to 7200"},
		{"backup mode", func(s *OpenSearchSink) { s.S3BackupMode = "AllData" }, "s3_backup_mode", "FailedDocumentsOnly or AllDocuments"},
		{"in flight 0", func(s *OpenSearchSink) { s.MaxInFlight = 0 }, "max_in_flight", "allowed 1 to 64"},
		{"in flight 65", func(s *OpenSearchSink) { s.MaxInFlight = 65 }, "max_in_flight", "allowed 1 to 64"},
		{"timeout 0", func(s *OpenSearchSink) { s.RequestTimeout = 0 }, "request_timeout", "allowed 1s to 10m0s"},
		{"timeout 11m", func(s *OpenSearchSink) { s.RequestTimeout = 11 * time.Minute }, "request_timeout", "allowed 1s to 10m0s"},
		{"no backup bucket", func(s *OpenSearchSink) { s.S3Backup.Bucket = "" }, "s3_backup.bucket", "missing"},
		{"bad backup bucket", func(s *OpenSearchSink) { s.S3Backup.Bucket = "My_Bucket" }, "s3_backup.bucket", "not an S3 bucket name"},
		{"backup prefix expression", func(s *OpenSearchSink) { s.S3Backup.Prefix = "!{timestamp:yyyy}/" }, "s3_backup.prefix", "not supported"},
		{"backup prefix absolute", func(s *OpenSearchSink) { s.S3Backup.Prefix = "/errors/" }, "s3_backup.prefix", "relative"},
		{"backup compression", func(s *OpenSearchSink) { s.S3Backup.Compression = "ZIP" }, "s3_backup.compression", "GZIP or UNCOMPRESSED"},
		{"auth type", func(s *OpenSearchSink) { s.Auth.Type = "oauth" }, "auth.type", "none, basic or sigv4"},
		{"basic without user", func(s *OpenSearchSink) { s.Auth = OpenSearchAuth{Type: "basic", Password: "x", Service: "es"} }, "auth.username", "missing"},
		{"basic without password", func(s *OpenSearchSink) { s.Auth = OpenSearchAuth{Type: "basic", Username: "u", Service: "es"} }, "auth.password", "password_env"},
		{"basic with two passwords", func(s *OpenSearchSink) {
			s.Auth = OpenSearchAuth{Type: "basic", Username: "u", Password: "x", PasswordFile: "/run/secrets/pw", Service: "es"}
		}, "auth.password", "exactly one"},
		{"basic with env", func(s *OpenSearchSink) {
			s.Auth = OpenSearchAuth{Type: "basic", Username: "u", PasswordEnv: "OS_PASSWORD", Service: "es"}
		}, "", ""},
		{"basic with bad env name", func(s *OpenSearchSink) {
			s.Auth = OpenSearchAuth{Type: "basic", Username: "u", PasswordEnv: "OS-PASSWORD", Service: "es"}
		}, "auth.password_env", "not an environment variable name"},
		{"password without basic", func(s *OpenSearchSink) { s.Auth.Password = "secret" }, "auth.password", `type is "none"`},
		{"sigv4 service", func(s *OpenSearchSink) { s.Auth = OpenSearchAuth{Type: "sigv4", Service: "lambda"} }, "auth.service", "es or aoss"},
		{"sigv4 region", func(s *OpenSearchSink) { s.Auth = OpenSearchAuth{Type: "sigv4", Service: "aoss", Region: "eu-west-1"} }, "", ""},
		{"region without sigv4", func(s *OpenSearchSink) { s.Auth.Region = "eu-west-1" }, "auth.region", "only signs sigv4"},
		{"ca file and insecure", func(s *OpenSearchSink) {
			s.TLS = OpenSearchTLS{CAFile: "/etc/ca.pem", InsecureSkipVerify: true}
		}, "tls.ca_file", "set only one"},
		{"tls without https", func(s *OpenSearchSink) {
			s.Endpoints = []string{"http://localhost:9200"}
			s.TLS.InsecureSkipVerify = true
		}, "tls.insecure_skip_verify", "no endpoint uses https"},
		{"insecure with https", func(s *OpenSearchSink) { s.TLS.InsecureSkipVerify = true }, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validOpenSearch()
			c.mod(&s)
			errs := checkOpenSearch(s)
			if c.key == "" {
				if len(errs) > 0 {
					t.Fatalf("want no problem, got %v", errs)
				}
				return
			}
			e, ok := errs[c.key]
			if !ok {
				t.Fatalf("want a problem with %s, got %v", c.key, errs)
			}
			if !strings.Contains(e.Error(), c.message) {
				t.Errorf("problem %q does not say %q", e.Error(), c.message)
			}
			if len(errs) != 1 {
				t.Errorf("want one problem, got %v", errs)
			}
		})
	}
}

// Secrets never appear in messages.
func TestOpenSearchSecretsAreNotRepeated(t *testing.T) {
	s := validOpenSearch()
	s.Auth.Password = "hunter2"
	s.Auth.Username = "admin"
	for _, e := range checkOpenSearch(s) {
		if strings.Contains(e.Error(), "hunter2") || strings.Contains(e.Error(), "admin") {
			t.Errorf("message repeats a secret: %s", e.Error())
		}
	}
}

// The example documents every key of the section, each at its default apart from the three
// that have none, and it passes the section's checks.
func TestOpenSearchExampleFile(t *testing.T) {
	cfg, problems, err := decode(LoadOptions{Path: openSearchExample, Environ: noEnv})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode %s: %v %v", openSearchExample, err, problems)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].OpenSearch == nil || cfg.Sinks[0].Type != "opensearch" {
		t.Fatalf("example sinks = %+v, want one opensearch sink", cfg.Sinks)
	}
	got := *cfg.Sinks[0].OpenSearch
	if errs := checkOpenSearch(got); len(errs) > 0 {
		t.Errorf("example does not pass the checks: %v", errs)
	}
	want := OpenSearchDefaults()
	want.Endpoints, want.Index, want.S3Backup.Bucket = got.Endpoints, got.Index, got.S3Backup.Bucket
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example differs from the defaults:\n got %+v\nwant %+v", got, want)
	}

	b, err := os.ReadFile(openSearchExample)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var inFile, inType []string
	rawKeys(raw, "", &inFile)
	for i, k := range inFile { // a list of scalars (endpoints) is one key
		inFile[i] = strings.TrimSuffix(k, "[]")
	}
	typeKeys(reflect.TypeFor[OpenSearchSink](), "sinks[].opensearch", &inType)
	for _, k := range inType {
		if !slices.Contains(inFile, k) {
			t.Errorf("key %s is not in %s", k, openSearchExample)
		}
	}
	for _, k := range inFile {
		if strings.HasPrefix(k, "sinks[].opensearch.") && !slices.Contains(inType, k) {
			t.Errorf("%s has %s, which is not a key", openSearchExample, k)
		}
	}
}

// Environment variables reach the section's keys, list entries included.
func TestOpenSearchFromEnvironment(t *testing.T) {
	cfg, problems, err := decode(LoadOptions{Environ: envOf(
		"SHARDHOSE_SINKS__0__NAME=search",
		"SHARDHOSE_SINKS__0__TYPE=opensearch",
		"SHARDHOSE_SINKS__0__OPENSEARCH__INDEX=logs",
		"SHARDHOSE_SINKS__0__OPENSEARCH__S3_BACKUP__BUCKET=my-backup",
		"SHARDHOSE_SINKS__0__OPENSEARCH__AUTH__TYPE=basic",
		"SHARDHOSE_SINKS__0__OPENSEARCH__AUTH__PASSWORD_ENV=OS_PASSWORD",
		"SHARDHOSE_SINKS__0__OPENSEARCH__RETRY_DURATION_IN_SECONDS=60",
	)})
	if err != nil || len(problems) > 0 {
		t.Fatalf("decode: %v %v", err, problems)
	}
	s := cfg.Sinks[0].OpenSearch
	if s == nil {
		t.Fatal("no opensearch section")
	}
	if s.Index != "logs" || s.S3Backup.Bucket != "my-backup" || s.Auth.Type != "basic" || s.Auth.PasswordEnv != "OS_PASSWORD" || s.RetryDurationInSeconds != 60 {
		t.Errorf("section = %+v", *s)
	}
	if s.IndexRotation != "OneDay" || s.MaxInFlight != 2 || s.S3Backup.Compression != "UNCOMPRESSED" {
		t.Errorf("defaults not applied under the environment's keys: %+v", *s)
	}
}

package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shardhose/shardhose/internal/lazyregexp"
)

// OpenSearchSink configures a sink of type opensearch: Amazon Data Firehose's OpenSearch Service
// destination re-created for any OpenSearch (or Elasticsearch 7) cluster, self-hosted or AWS.
// Keys follow Firehose's API (IndexName, TypeName, IndexRotationPeriod, BufferingHints,
// RetryOptions.DurationInSeconds, S3BackupMode, DocumentIdOptions) in snake case.
type OpenSearchSink struct {
	// Endpoints are the cluster's base URLs (http:// or https://, host, optional port and path,
	// no credentials). Requests go round-robin over them. Required.
	Endpoints []string `koanf:"endpoints"`
	// Index is the index name before rotation: 1 to 80 characters, lower case, none of
	// \ / * ? " < > | , # : or space, not starting with _ - +. Required.
	Index string `koanf:"index"`
	// TypeName is sent as _type for Elasticsearch 6.x clusters only; empty (the default) sends no
	// type, which OpenSearch and Elasticsearch 7+ require. Error records name it as esTypeName
	// ("_doc" when empty).
	TypeName string `koanf:"type_name"`
	// IndexRotation appends part of each record's UTC arrival time to Index: NoRotation,
	// OneHour (-YYYY-MM-DD-HH), OneDay (-YYYY-MM-DD, the default, as in Firehose), OneWeek
	// (-YYYY-wWW) or OneMonth (-YYYY-MM).
	IndexRotation string `koanf:"index_rotation"`
	// DocumentIDField names a top-level field of the JSON document whose value (a string or a
	// number) becomes the document's _id, so a later record with the same value replaces the
	// earlier one. Empty means DocumentIDOptions decides.
	DocumentIDField   string                      `koanf:"document_id_field"`
	DocumentIDOptions OpenSearchDocumentIDOptions `koanf:"document_id_options"`
	// BufferingHints: size 1 to 100 MiB, interval 60 to 900 s (Firehose's ranges for OpenSearch).
	BufferingHints BufferingHints `koanf:"buffering_hints"`
	// RetryDurationInSeconds is how long failed documents are retried (0 to 7200) before they
	// go to the backup bucket. 0 means one attempt.
	RetryDurationInSeconds int `koanf:"retry_duration_in_seconds"`
	// S3BackupMode is FailedDocumentsOnly (the default) or AllDocuments (every document is also
	// copied raw to the backup bucket).
	S3BackupMode string           `koanf:"s3_backup_mode"`
	S3Backup     OpenSearchBackup `koanf:"s3_backup"`
	Auth         OpenSearchAuth   `koanf:"auth"`
	TLS          OpenSearchTLS    `koanf:"tls"`
	// MaxInFlight caps the bulk batches being delivered at once (1 to 64); writes block beyond.
	MaxInFlight int `koanf:"max_in_flight"`
	// RequestTimeout bounds one bulk request (1s to 10m); a request that takes longer counts as
	// failed and is retried within the retry duration.
	RequestTimeout time.Duration `koanf:"request_timeout"`
}

// OpenSearchDocumentIDOptions is Firehose's DocumentIdOptions.
type OpenSearchDocumentIDOptions struct {
	// DefaultDocumentIDFormat is FIREHOSE_DEFAULT (the default: an id derived from the record's
	// stream, shard, sequence and sub-sequence number, the same on every retry and every re-read,
	// so a record is never indexed twice) or NO_DOCUMENT_ID (the cluster assigns ids: cheaper to
	// index, but a retried or re-read record is indexed again under a new id).
	DefaultDocumentIDFormat string `koanf:"default_document_id_format"`
}

// OpenSearchBackup is the S3 location of the sink's backup: error records under
// AmazonOpenSearchService_failed/, and in AllDocuments mode a raw copy of every document.
type OpenSearchBackup struct {
	Bucket string `koanf:"bucket"`
	// Prefix is put before the folder and the YYYY/MM/dd/HH/ time folders; write its trailing slash.
	Prefix string `koanf:"prefix"`
	// Compression is UNCOMPRESSED (the default) or GZIP.
	Compression string `koanf:"compression"`
}

// OpenSearchAuth says how requests are authenticated: none, basic (HTTP basic auth, for
// self-hosted clusters with the security plugin) or sigv4 (AWS Signature V4 with the process's
// AWS credentials, for Amazon OpenSearch Service and OpenSearch Serverless).
type OpenSearchAuth struct {
	Type     string `koanf:"type"`
	Username string `koanf:"username"`
	// Exactly one of Password, PasswordEnv (the name of an environment variable holding it) and
	// PasswordFile (a file holding it; one trailing newline is ignored) is set with basic auth.
	Password     string `koanf:"password"`
	PasswordEnv  string `koanf:"password_env"`
	PasswordFile string `koanf:"password_file"`
	// Service is the SigV4 signing name: es (OpenSearch Service, the default) or aoss (Serverless).
	Service string `koanf:"service"`
	// Region signs SigV4 requests; empty means aws.region.
	Region string `koanf:"region"`
}

// OpenSearchTLS configures TLS to https endpoints.
type OpenSearchTLS struct {
	// CAFile is a PEM bundle of the authorities to trust instead of the system's.
	CAFile string `koanf:"ca_file"`
	// InsecureSkipVerify accepts any server certificate. For tests only: it allows a
	// man-in-the-middle to read every document and the credentials.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// Allowed values of the opensearch section's enumerated keys.
var (
	openSearchIndexRotations = []string{"NoRotation", "OneHour", "OneDay", "OneWeek", "OneMonth"}
	openSearchBackupModes    = []string{"FailedDocumentsOnly", "AllDocuments"}
	openSearchDocumentIDs    = []string{"FIREHOSE_DEFAULT", "NO_DOCUMENT_ID"}
	openSearchAuthTypes      = []string{"none", "basic", "sigv4"}
	openSearchSigV4Services  = []string{"es", "aoss"}
)

// OpenSearchDefaults are applied to every opensearch sink section for keys it leaves out.
func OpenSearchDefaults() OpenSearchSink {
	return OpenSearchSink{
		IndexRotation:          "OneDay",
		DocumentIDOptions:      OpenSearchDocumentIDOptions{DefaultDocumentIDFormat: "FIREHOSE_DEFAULT"},
		BufferingHints:         BufferingHints{SizeInMBs: 5, IntervalInSeconds: 300},
		RetryDurationInSeconds: 300,
		S3BackupMode:           "FailedDocumentsOnly",
		S3Backup:               OpenSearchBackup{Compression: "UNCOMPRESSED"},
		Auth:                   OpenSearchAuth{Type: "none", Service: "es"},
		MaxInFlight:            2,
		RequestTimeout:         time.Minute,
	}
}

// openSearchIndexForbidden are the characters OpenSearch refuses in index names (':' is deprecated there
// and refused here).
const openSearchIndexForbidden = `\/*?"<>|,#: `

var (
	openSearchTypeNameRe = lazyregexp.New(`^[^_\s][^\s]{0,99}$`)
	openSearchFieldRe    = lazyregexp.New(`^[^\x00-\x1f]{1,256}$`)
)

func (v *checker) sinkOpenSearch(p string, s OpenSearchSink) {
	if len(s.Endpoints) == 0 {
		v.missing(p+".endpoints", "list the cluster's URLs, e.g. [https://search-logs.us-east-1.es.amazonaws.com]")
	}
	https := false
	for i, e := range s.Endpoints {
		key := fmt.Sprintf("%s.endpoints[%d]", p, i)
		if e == "" {
			v.missing(key, "an endpoint URL, e.g. https://localhost:9200")
			continue
		}
		v.endpoint(key, e)
		if u, err := url.Parse(e); err == nil && u.Scheme == "https" {
			https = true
		}
	}

	switch {
	case s.Index == "":
		v.missing(p+".index", "name the index to write to (lower case, 1 to 80 characters)")
	case len(s.Index) > 80:
		v.add(p+".index", strconv.Quote(s.Index), "is too long: allowed 1 to 80 characters (Firehose's limit; rotation appends up to 14 more)")
	case s.Index != strings.ToLower(s.Index):
		v.add(p+".index", strconv.Quote(s.Index), "is not an index name: OpenSearch index names are lower case")
	case strings.ContainsAny(s.Index, openSearchIndexForbidden):
		v.add(p+".index", strconv.Quote(s.Index), `is not an index name: it may not contain \ / * ? " < > | , # : or a space`)
	case strings.IndexAny(s.Index[:1], "_-+") == 0 || s.Index == "." || s.Index == "..":
		v.add(p+".index", strconv.Quote(s.Index), "is not an index name: it may not start with _ - or + nor be . or ..")
	}
	switch {
	case s.TypeName == "":
	case !openSearchTypeNameRe.MatchString(s.TypeName):
		v.add(p+".type_name", strconv.Quote(s.TypeName), "is not a type name: 1 to 100 characters without spaces, not starting with _ (leave it empty for OpenSearch and Elasticsearch 7+)")
	case s.Auth.Type == "sigv4" && s.Auth.Service == "aoss":
		v.add(p+".type_name", strconv.Quote(s.TypeName), "is set but auth.service is aoss: OpenSearch Serverless has no types; leave it empty")
	}
	v.oneOf(p+".index_rotation", s.IndexRotation, openSearchIndexRotations)
	if s.DocumentIDField != "" && !openSearchFieldRe.MatchString(s.DocumentIDField) {
		v.add(p+".document_id_field", strconv.Quote(s.DocumentIDField), "is not a field name: 1 to 256 characters without control characters")
	}
	v.oneOf(p+".document_id_options.default_document_id_format", s.DocumentIDOptions.DefaultDocumentIDFormat, openSearchDocumentIDs)
	v.intRange(p+".buffering_hints.size_in_mbs", s.BufferingHints.SizeInMBs, 1, 100)
	v.intRange(p+".buffering_hints.interval_in_seconds", s.BufferingHints.IntervalInSeconds, 60, 900)
	v.intRange(p+".retry_duration_in_seconds", s.RetryDurationInSeconds, 0, 7200)
	v.oneOf(p+".s3_backup_mode", s.S3BackupMode, openSearchBackupModes)
	v.intRange(p+".max_in_flight", s.MaxInFlight, 1, 64)
	v.durationRange(p+".request_timeout", s.RequestTimeout, time.Second, 10*time.Minute, "a bulk request that takes longer is failed and retried")

	b := s.S3Backup
	switch {
	case b.Bucket == "":
		v.missing(p+".s3_backup.bucket", "name the S3 bucket that receives documents the cluster did not take (Firehose requires one too)")
	case !bucketNameRe.MatchString(b.Bucket):
		v.add(p+".s3_backup.bucket", strconv.Quote(b.Bucket), "is not an S3 bucket name: 3 to 63 characters from a-z, 0-9, . - starting and ending with a letter or digit")
	}
	if strings.Contains(b.Prefix, "!{") {
		v.add(p+".s3_backup.prefix", strconv.Quote(b.Prefix), "is not allowed: prefix expressions (!{...}) are not supported in backup prefixes; use a literal prefix")
	} else if strings.HasPrefix(b.Prefix, "/") || strings.Contains(b.Prefix, "..") {
		v.add(p+".s3_backup.prefix", strconv.Quote(b.Prefix), "is not allowed: write a relative key prefix such as logs/, without a leading slash or ..")
	}
	v.oneOf(p+".s3_backup.compression", b.Compression, compressions)

	v.openSearchAuth(p+".auth", s.Auth)
	if s.TLS.CAFile != "" && s.TLS.InsecureSkipVerify {
		v.add(p+".tls.ca_file", strconv.Quote(s.TLS.CAFile), "is set but tls.insecure_skip_verify is true, which trusts every certificate: set only one")
	}
	if (s.TLS.CAFile != "" || s.TLS.InsecureSkipVerify) && !https && len(s.Endpoints) > 0 {
		key, val := p+".tls.ca_file", strconv.Quote(s.TLS.CAFile)
		if s.TLS.CAFile == "" {
			key, val = p+".tls.insecure_skip_verify", "true"
		}
		v.add(key, val, "is set but no endpoint uses https://, so it has no effect")
	}
}

func (v *checker) openSearchAuth(p string, a OpenSearchAuth) {
	v.oneOf(p+".type", a.Type, openSearchAuthTypes)
	secrets := 0
	for _, s := range []string{a.Password, a.PasswordEnv, a.PasswordFile} {
		if s != "" {
			secrets++
		}
	}
	if a.Type != "basic" {
		// Values of these keys are secret or point at secrets: never repeated in messages.
		for _, k := range []struct{ key, val string }{
			{"username", a.Username}, {"password", a.Password}, {"password_env", a.PasswordEnv}, {"password_file", a.PasswordFile},
		} {
			if k.val != "" {
				v.add(p+"."+k.key, "", fmt.Sprintf("is set but %s.type is %q, which ignores it: set type to basic or remove the key", p, a.Type))
			}
		}
	}
	switch a.Type {
	case "basic":
		if a.Username == "" {
			v.missing(p+".username", "basic auth needs a user name")
		}
		switch {
		case secrets == 0:
			v.missing(p+".password", "basic auth needs one of password, password_env (an environment variable's name) or password_file")
		case secrets > 1:
			v.add(p+".password", "", "is set more than once: use exactly one of password, password_env and password_file")
		}
		if a.PasswordEnv != "" && !openSearchEnvNameRe.MatchString(a.PasswordEnv) {
			v.add(p+".password_env", strconv.Quote(a.PasswordEnv), "is not an environment variable name: letters, digits and _, not starting with a digit")
		}
	case "sigv4":
		v.oneOf(p+".service", a.Service, openSearchSigV4Services)
	}
	if a.Type != "sigv4" && a.Region != "" {
		v.add(p+".region", strconv.Quote(a.Region), fmt.Sprintf("is set but %s.type is %q: the region only signs sigv4 requests", p, a.Type))
	}
	if a.Region != "" && !regionRe.MatchString(a.Region) {
		v.add(p+".region", strconv.Quote(a.Region), "is not a region name: lower-case letters, digits and hyphens, e.g. us-east-1")
	}
}

var openSearchEnvNameRe = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/shardhose/shardhose/internal/lazyregexp"
	"github.com/shardhose/shardhose/process/eventfilter"
)

// Processing configures the stage between reading and delivery: the handlers a batch goes
// through and Lambda's failure policy around them.
//
// The failure policy keys are Lambda's event source mapping settings, with Lambda's ranges.
type Processing struct {
	// Handlers run in this order; the records one delivers are the next one's input. None means
	// every record is delivered as read.
	Handlers []ProcessingHandler `koanf:"handlers"`

	// MaximumRetryAttempts is how often a failed batch is retried before it is written as a dead
	// letter: -1 (the default) retries until the records pass maximum_record_age_in_seconds, or
	// forever when that is -1 too. 0 to 10,000 otherwise. A finite value needs dead_letter.
	MaximumRetryAttempts int `koanf:"maximum_retry_attempts"`
	// MaximumRecordAgeInSeconds sends records older than this (by arrival in the stream) to the
	// dead letters without another handler call: -1 (the default, no limit), or 60 to 604,800.
	MaximumRecordAgeInSeconds int `koanf:"maximum_record_age_in_seconds"`
	// BisectBatchOnFunctionError splits a failed batch in two and retries each half on its own,
	// isolating poison records; a split does not use up a retry.
	BisectBatchOnFunctionError bool `koanf:"bisect_batch_on_function_error"`
	// FunctionResponseTypes is [] or ["ReportBatchItemFailures"]: with it, a handler's partial
	// batch response marks the first failed record, and only it and those after it are retried.
	FunctionResponseTypes []string `koanf:"function_response_types"`
	// ParallelizationFactor handles up to this many batches of one shard at once, 1 to 10;
	// records with the same partition key always stay in order.
	ParallelizationFactor int `koanf:"parallelization_factor"`
	// HandlerTimeout bounds one call of the handler chain; a call that takes longer is a failure
	// of the batch.
	HandlerTimeout time.Duration `koanf:"handler_timeout"`
	// Retry is the wait between retries of a failed batch (jittered, doubling to max_backoff).
	Retry Backoff `koanf:"retry"`
	// ErrorOutput is where Firehose-contract ProcessingFailed records go, as Firehose error
	// records under <prefix>processing-failed/. Its bucket defaults to the first S3 sink's
	// (ApplyDerivedDefaults); with no bucket at all they are written as dead letters, and with
	// no dead-letter destination either the configuration is refused.
	ErrorOutput ErrorOutput `koanf:"error_output"`
}

// Backoff is a wait that starts at InitialBackoff and doubles up to MaxBackoff, with jitter.
type Backoff struct {
	InitialBackoff time.Duration `koanf:"initial_backoff"`
	MaxBackoff     time.Duration `koanf:"max_backoff"`
}

// ErrorOutput is an S3 location for error records.
type ErrorOutput struct {
	Bucket string `koanf:"bucket"`
	Prefix string `koanf:"prefix"`
}

// ReportBatchItemFailures is the function response type that enables partial batch responses.
const ReportBatchItemFailures = "ReportBatchItemFailures"

// ReportsBatchItemFailures tells whether partial batch responses are enabled.
func (p Processing) ReportsBatchItemFailures() bool {
	return slices.Contains(p.FunctionResponseTypes, ReportBatchItemFailures)
}

// MayFailRecords tells whether a handler can mark records ProcessingFailed: a lambda or http
// handler under the Firehose contract.
func (p Processing) MayFailRecords() bool {
	return p.firehoseHandler() >= 0
}

// firehoseHandler returns the index of the first Firehose-contract function handler, or -1.
func (p Processing) firehoseHandler() int {
	for i, h := range p.Handlers {
		if (h.Type == HandlerLambda || h.Type == HandlerHTTP) && h.Contract == ContractFirehose {
			return i
		}
	}
	return -1
}

// GivesUp tells whether the policy can give records up (and so needs a dead-letter destination).
func (p Processing) GivesUp() bool {
	return p.MaximumRetryAttempts >= 0 || p.MaximumRecordAgeInSeconds > 0
}

// ProcessingDefaults are Lambda's defaults: retry until the records expire, no age limit, no
// bisect, one batch per shard at a time.
func ProcessingDefaults() Processing {
	return Processing{
		MaximumRetryAttempts:      -1,
		MaximumRecordAgeInSeconds: -1,
		ParallelizationFactor:     1,
		HandlerTimeout:            5 * time.Minute,
		Retry:                     Backoff{InitialBackoff: time.Second, MaxBackoff: time.Minute},
		ErrorOutput:               ErrorOutput{Prefix: "errors/"},
	}
}

// Handler types and contracts.
const (
	HandlerJSON   = "json"
	HandlerFilter = "filter"
	HandlerEnrich = "enrich"
	HandlerLambda = "lambda"
	HandlerHTTP   = "http"

	// ContractLambda sends Lambda's Kinesis event ({"Records": [...]}) and reads a partial batch
	// response ({"batchItemFailures": [...]}).
	ContractLambda = "lambda"
	// ContractFirehose sends Firehose's transform request ({"records": [{recordId, data}]}) and
	// reads one result per record: Ok, Dropped or ProcessingFailed.
	ContractFirehose = "firehose"
)

// Limits of the processing keys.
const (
	// DefaultHTTPHandlerTimeout bounds one call of an http handler whose timeout is unset.
	DefaultHTTPHandlerTimeout = 30 * time.Second
	// MaxHTTPHandlerTimeout is Lambda's longest function timeout (15 minutes).
	MaxHTTPHandlerTimeout = 15 * time.Minute
)

var (
	handlerTypes = []string{HandlerJSON, HandlerFilter, HandlerEnrich, HandlerLambda, HandlerHTTP}
	contracts    = []string{ContractLambda, ContractFirehose}
	// functionNameRe is Lambda's FunctionName for Invoke: a name, a partial ARN
	// (ACCOUNT:function:NAME) or a full ARN, each optionally with :VERSION or :ALIAS.
	functionNameRe = lazyregexp.New(`^(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?$`)
	qualifierRe    = lazyregexp.New(`^(\$LATEST|[a-zA-Z0-9$_-]{1,128})$`)
	fieldNameRe    = lazyregexp.New(`^\S(.*\S)?$`)
)

// ProcessingHandler is one handler of the processing stage. Type selects it; each type reads only
// its own keys (Validate rejects keys of another type):
//
//	json    (no keys)
//	filter  patterns
//	enrich  fields, timestamp_field, categories
//	lambda  function, qualifier, contract
//	http    url, contract, timeout
type ProcessingHandler struct {
	Type string `koanf:"type"`

	// Patterns (filter) are Lambda event filtering patterns, each a JSON object tested against
	// the record's data and metadata (data, partitionKey, sequenceNumber,
	// approximateArrivalTimestamp): 1 to 5, a record passing when it matches any.
	Patterns []string `koanf:"patterns"`

	// Fields (enrich) are constant fields set on every record, name to value (any JSON value).
	Fields map[string]any `koanf:"fields"`
	// TimestampField (enrich) names the field that receives the time of processing (RFC 3339,
	// UTC, milliseconds); empty means none.
	TimestampField string `koanf:"timestamp_field"`
	// Categories (enrich) derive a label from a numeric field, like the recipe's amount_category.
	Categories []EnrichCategory `koanf:"categories"`

	// Function (lambda) is the function's name, ARN or partial ARN, optionally with :alias.
	Function string `koanf:"function"`
	// Qualifier (lambda) is a version or alias to invoke; empty means the function's unqualified
	// ARN ($LATEST, or the alias in Function).
	Qualifier string `koanf:"qualifier"`

	// Contract (lambda, http) is "lambda" (the default when empty) or "firehose".
	Contract string `koanf:"contract"`

	// URL (http) receives the request as a POST of JSON.
	URL string `koanf:"url"`
	// Timeout (http) bounds one request; 0 means DefaultHTTPHandlerTimeout.
	Timeout time.Duration `koanf:"timeout"`
}

// EnrichCategory sets Into to the value of the first of Ranges that holds the number in Field.
// Field may hold a JSON number or a string holding one ("150.50"). A record without Field (or
// with null there) gets no category; one whose Field holds anything else fails.
type EnrichCategory struct {
	Field  string        `koanf:"field"`
	Into   string        `koanf:"into"`
	Ranges []EnrichRange `koanf:"ranges"`
}

// EnrichRange is one band of an EnrichCategory: numbers below Below (or up to and including UpTo)
// get Value. At most one bound may be set; a range with neither holds every number and may only
// come last.
type EnrichRange struct {
	Below *float64 `koanf:"below"`
	UpTo  *float64 `koanf:"up_to"`
	Value string   `koanf:"value"`
}

// ContractOrDefault returns Contract, or ContractLambda when it is empty.
func (h ProcessingHandler) ContractOrDefault() string {
	if h.Contract == "" {
		return ContractLambda
	}
	return h.Contract
}

// TimeoutOrDefault returns Timeout, or DefaultHTTPHandlerTimeout when it is 0.
func (h ProcessingHandler) TimeoutOrDefault() time.Duration {
	if h.Timeout == 0 {
		return DefaultHTTPHandlerTimeout
	}
	return h.Timeout
}

func (v *checker) processing(p Processing) {
	for i, h := range p.Handlers {
		v.processingHandler(fmt.Sprintf("processing.handlers[%d]", i), h)
	}
	v.intRange("processing.maximum_retry_attempts", p.MaximumRetryAttempts, -1, 10000)
	if a := p.MaximumRecordAgeInSeconds; a != -1 && (a < 60 || a > 604800) {
		v.add("processing.maximum_record_age_in_seconds", strconv.Itoa(a), "is out of range: allowed -1 (no limit) or 60 to 604800")
	}
	for i, t := range p.FunctionResponseTypes {
		if t != ReportBatchItemFailures {
			v.add(fmt.Sprintf("processing.function_response_types[%d]", i), strconv.Quote(t), "is not allowed: use ReportBatchItemFailures")
		}
	}
	v.intRange("processing.parallelization_factor", p.ParallelizationFactor, 1, 10)
	v.durationRange("processing.handler_timeout", p.HandlerTimeout, time.Second, MaxHTTPHandlerTimeout, "")
	v.retry("processing.retry", Retry{InitialBackoff: p.Retry.InitialBackoff, MaxBackoff: p.Retry.MaxBackoff})
	if b := p.ErrorOutput.Bucket; b != "" && !bucketNameRe.MatchString(b) {
		v.add("processing.error_output.bucket", strconv.Quote(b), "is not an S3 bucket name: 3 to 63 characters from a-z, 0-9, . - starting and ending with a letter or digit")
	}
}

// processingNeedsDeadLetter refuses a policy that gives records up with nowhere to put them.
func (v *checker) processingNeedsDeadLetter(p Processing, d DeadLetter) {
	if !p.GivesUp() || d.Type != "" {
		return
	}
	key, val := "processing.maximum_retry_attempts", strconv.Itoa(p.MaximumRetryAttempts)
	if p.MaximumRetryAttempts < 0 {
		key, val = "processing.maximum_record_age_in_seconds", strconv.Itoa(p.MaximumRecordAgeInSeconds)
	}
	v.add(key, val, "gives records up, so a dead-letter destination is required: set dead_letter.type (or use -1 to retry until the records expire)")
}

// processingFailedHasAPlace refuses a Firehose-contract handler whose ProcessingFailed records
// could be stored nowhere: such a record's batch would never finish, and its shard would stop.
func (v *checker) processingFailedHasAPlace(p Processing, d DeadLetter) {
	i := p.firehoseHandler()
	if i < 0 || p.ErrorOutput.Bucket != "" || d.Type != "" {
		return
	}
	v.add(fmt.Sprintf("processing.handlers[%d].contract", i), ContractFirehose,
		"can mark records ProcessingFailed, which need somewhere to go: set processing.error_output.bucket (it defaults to the first s3 sink's bucket, and there is no s3 sink) or dead_letter.type")
}

func (v *checker) processingHandler(p string, h ProcessingHandler) {
	v.oneOf(p+".type", h.Type, handlerTypes)
	// Keys of another type would be silently ignored; say so instead.
	owners := []struct {
		key   string
		set   bool
		types []string
	}{
		{"patterns", h.Patterns != nil, []string{HandlerFilter}},
		{"fields", h.Fields != nil, []string{HandlerEnrich}},
		{"timestamp_field", h.TimestampField != "", []string{HandlerEnrich}},
		{"categories", h.Categories != nil, []string{HandlerEnrich}},
		{"function", h.Function != "", []string{HandlerLambda}},
		{"qualifier", h.Qualifier != "", []string{HandlerLambda}},
		{"contract", h.Contract != "", []string{HandlerLambda, HandlerHTTP}},
		{"url", h.URL != "", []string{HandlerHTTP}},
		{"timeout", h.Timeout != 0, []string{HandlerHTTP}},
	}
	known := !v.bad(p + ".type")
	for _, o := range owners {
		if o.set && known && !slices.Contains(o.types, h.Type) {
			v.add(p+"."+o.key, "", fmt.Sprintf("is set but the handler's type is %q: it is used only by %s handlers", h.Type, list(o.types)))
		}
	}
	switch h.Type {
	case HandlerFilter:
		v.filterPatterns(p+".patterns", h.Patterns)
	case HandlerEnrich:
		v.enrich(p, h)
	case HandlerLambda:
		switch {
		case h.Function == "":
			v.missing(p+".function", "name the Lambda function to invoke: its name, ARN or partial ARN")
		case len(h.Function) > 170 || !functionNameRe.MatchString(h.Function):
			v.add(p+".function", strconv.Quote(h.Function), "is not a Lambda function name or ARN: e.g. my-function, my-function:live or arn:aws:lambda:us-east-1:123456789012:function:my-function")
		}
		if h.Qualifier != "" && !qualifierRe.MatchString(h.Qualifier) {
			v.add(p+".qualifier", strconv.Quote(h.Qualifier), "is not a version or alias: $LATEST, a version number or an alias name (letters, digits, - _)")
		}
		v.contract(p+".contract", h.Contract)
	case HandlerHTTP:
		if h.URL == "" {
			v.missing(p+".url", "set the URL to POST batches to, e.g. http://127.0.0.1:9000/invoke")
		} else if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			v.add(p+".url", strconv.Quote(h.URL), "is not an http:// or https:// URL with a host, e.g. http://127.0.0.1:9000/invoke")
		}
		v.contract(p+".contract", h.Contract)
		v.durationRange(p+".timeout", h.Timeout, 0, MaxHTTPHandlerTimeout, "0 means 30s; Lambda functions run at most 15m")
	}
}

func (v *checker) contract(key, c string) {
	if c != "" {
		v.oneOf(key, c, contracts)
	}
}

func (v *checker) filterPatterns(key string, patterns []string) {
	switch {
	case len(patterns) == 0:
		v.missing(key, fmt.Sprintf("a filter handler needs 1 to %d patterns, e.g. ['{\"data\": {\"event_type\": [\"purchase\"]}}']", eventfilter.MaxPatterns))
		return
	case len(patterns) > eventfilter.MaxPatterns:
		v.add(key, strconv.Itoa(len(patterns))+" patterns", fmt.Sprintf("are too many: Lambda allows at most %d per event source mapping", eventfilter.MaxPatterns))
		return
	}
	for i, src := range patterns {
		if _, err := eventfilter.CompileKinesis(src); err != nil {
			v.add(fmt.Sprintf("%s[%d]", key, i), strconv.Quote(src), "is not a valid filter pattern: "+err.Error())
		}
	}
}

func (v *checker) enrich(p string, h ProcessingHandler) {
	if len(h.Fields) == 0 && h.TimestampField == "" && len(h.Categories) == 0 {
		v.missing(p+".fields", "an enrich handler needs at least one of fields, timestamp_field or categories")
		return
	}
	for _, name := range slices.Sorted(maps.Keys(h.Fields)) {
		val := h.Fields[name]
		key := p + ".fields." + name
		if !fieldNameRe.MatchString(name) {
			v.add(key, strconv.Quote(name), "is not a field name: it must not be empty or start or end with a space")
			continue
		}
		if _, err := json.Marshal(val); err != nil {
			v.add(key, show(val), "cannot be written as JSON: "+err.Error())
		}
	}
	if h.TimestampField != "" && !fieldNameRe.MatchString(h.TimestampField) {
		v.add(p+".timestamp_field", strconv.Quote(h.TimestampField), "is not a field name: it must not start or end with a space")
	}
	for i, c := range h.Categories {
		cp := fmt.Sprintf("%s.categories[%d]", p, i)
		if c.Field == "" {
			v.missing(cp+".field", "name the numeric field to categorize, e.g. amount")
		}
		if c.Into == "" {
			v.missing(cp+".into", "name the field that receives the category, e.g. amount_category")
		}
		if len(c.Ranges) == 0 {
			v.missing(cp+".ranges", "list the ranges, e.g. [{up_to: 100, value: low}, {value: high}]")
		}
		var prev *float64 // the previous range's bound
		prevInclusive := false
		for j, r := range c.Ranges {
			rp := fmt.Sprintf("%s.ranges[%d]", cp, j)
			bound, inclusive := r.Below, false
			if r.UpTo != nil {
				bound, inclusive = r.UpTo, true
			}
			switch {
			case r.Below != nil && r.UpTo != nil:
				v.add(rp+".up_to", "", "is set together with below: a range has one upper bound")
			case bound == nil && j < len(c.Ranges)-1:
				v.add(rp, "", "has no bound (below or up_to) but is not the last range: the ranges after it could never apply")
			case bound != nil && prev != nil && (*bound < *prev || (*bound == *prev && (prevInclusive || !inclusive))):
				// Equal bounds are fine only as below X then up_to X (the range holding X alone).
				v.add(rp, formatFloat(*bound), fmt.Sprintf("can never apply: the ranges before it already hold every number up to %s; bounds must rise", formatFloat(*prev)))
			}
			if bound != nil {
				prev, prevInclusive = bound, inclusive
			}
			if r.Value == "" {
				v.missing(rp+".value", "set the category this range gives")
			}
		}
	}
}

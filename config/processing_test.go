package config

import (
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

const processingExample = "../configs/examples/processing.yaml"

func fp(f float64) *float64 { return &f }

// processingProblems validates a valid configuration with these handlers and returns the
// problems (nil when there are none).
func processingProblems(t *testing.T, hs ...ProcessingHandler) Errors {
	t.Helper()
	c := valid()
	c.Processing.Handlers = hs
	v := &checker{seen: map[string]bool{}}
	v.processing(c.Processing)
	return v.errs
}

func TestProcessingRules(t *testing.T) {
	const p = "processing.handlers[0]"
	filter := func(ps ...string) ProcessingHandler { return ProcessingHandler{Type: "filter", Patterns: ps} }
	enrichCat := func(rs ...EnrichRange) ProcessingHandler {
		return ProcessingHandler{Type: "enrich", Categories: []EnrichCategory{{Field: "amount", Into: "amount_category", Ranges: rs}}}
	}
	pattern := `{"data": {"event_type": ["purchase"]}}`
	rules := []struct {
		name string
		h    ProcessingHandler
		key  string // the one key reported, or "" for valid
	}{
		{"json", ProcessingHandler{Type: "json"}, ""},
		{"no type", ProcessingHandler{}, p + ".type"},
		{"unknown type", ProcessingHandler{Type: "transform"}, p + ".type"},
		{"type in capitals", ProcessingHandler{Type: "JSON"}, p + ".type"},
		{"unknown type hides other keys' owners", ProcessingHandler{Type: "x", URL: "http://a"}, p + ".type"},

		{"filter", filter(pattern), ""},
		{"filter with 5 patterns", filter(slices.Repeat([]string{pattern}, 5)...), ""},
		{"filter on partition key", filter(`{"partitionKey": [{"prefix": "user-"}]}`), ""},
		{"filter without patterns", filter(), p + ".patterns"},
		{"filter with 6 patterns", filter(slices.Repeat([]string{pattern}, 6)...), p + ".patterns"},
		{"pattern not JSON", filter(pattern, `{"data": `), p + ".patterns[1]"},
		{"pattern with a bad rule", filter(`{"data": {"a": "b"}}`), p + ".patterns[0]"},
		{"pattern with an unknown top-level field", filter(`{"event_type": ["purchase"]}`), p + ".patterns[0]"},
		{"pattern with wildcard", filter(`{"data": {"a": [{"wildcard": "x*"}]}}`), p + ".patterns[0]"},
		{"patterns on json", ProcessingHandler{Type: "json", Patterns: []string{pattern}}, p + ".patterns"},

		{"enrich fields", ProcessingHandler{Type: "enrich", Fields: map[string]any{"processing_status": "SUCCESS", "n": 1, "m": map[string]any{"a": []any{1}}}}, ""},
		{"enrich timestamp", ProcessingHandler{Type: "enrich", TimestampField: "processed_timestamp"}, ""},
		{"enrich nothing", ProcessingHandler{Type: "enrich"}, p + ".fields"},
		{"enrich field name blank", ProcessingHandler{Type: "enrich", Fields: map[string]any{" ": 1}}, p + ".fields. "},
		{"enrich value not JSON", ProcessingHandler{Type: "enrich", Fields: map[string]any{"a": map[any]any{1: 2}}}, p + ".fields.a"},
		{"enrich timestamp padded", ProcessingHandler{Type: "enrich", TimestampField: "ts "}, p + ".timestamp_field"},
		{"category, the recipe's", enrichCat(EnrichRange{UpTo: fp(100), Value: "low"}, EnrichRange{Value: "high"}), ""},
		{"category, three bands", enrichCat(EnrichRange{Below: fp(50), Value: "low"}, EnrichRange{Below: fp(200), Value: "medium"}, EnrichRange{Value: "high"}), ""},
		{"category, below then up_to the same bound", enrichCat(EnrichRange{Below: fp(0), Value: "neg"}, EnrichRange{UpTo: fp(0), Value: "zero"}), ""},
		{"category, all bounded", enrichCat(EnrichRange{Below: fp(0), Value: "neg"}), ""},
		{"category without field", ProcessingHandler{Type: "enrich", Categories: []EnrichCategory{{Into: "c", Ranges: []EnrichRange{{Value: "x"}}}}}, p + ".categories[0].field"},
		{"category without into", ProcessingHandler{Type: "enrich", Categories: []EnrichCategory{{Field: "a", Ranges: []EnrichRange{{Value: "x"}}}}}, p + ".categories[0].into"},
		{"category without ranges", enrichCat(), p + ".categories[0].ranges"},
		{"range with both bounds", enrichCat(EnrichRange{Below: fp(1), UpTo: fp(2), Value: "x"}), p + ".categories[0].ranges[0].up_to"},
		{"unbounded range not last", enrichCat(EnrichRange{Value: "x"}, EnrichRange{Below: fp(1), Value: "y"}), p + ".categories[0].ranges[0]"},
		{"bounds falling", enrichCat(EnrichRange{Below: fp(200), Value: "x"}, EnrichRange{Below: fp(50), Value: "y"}), p + ".categories[0].ranges[1]"},
		{"bounds repeating", enrichCat(EnrichRange{UpTo: fp(5), Value: "x"}, EnrichRange{UpTo: fp(5), Value: "y"}), p + ".categories[0].ranges[1]"},
		{"up_to then below the same bound", enrichCat(EnrichRange{UpTo: fp(5), Value: "x"}, EnrichRange{Below: fp(5), Value: "y"}), p + ".categories[0].ranges[1]"},
		{"range without value", enrichCat(EnrichRange{Value: ""}), p + ".categories[0].ranges[0].value"},
		{"categories on filter", ProcessingHandler{Type: "filter", Patterns: []string{pattern}, Categories: []EnrichCategory{{}}}, p + ".categories"},

		{"lambda by name", ProcessingHandler{Type: "lambda", Function: "my-function"}, ""},
		{"lambda by ARN with alias", ProcessingHandler{Type: "lambda", Function: "arn:aws:lambda:us-east-1:123456789012:function:my-function:live"}, ""},
		{"lambda by partial ARN", ProcessingHandler{Type: "lambda", Function: "123456789012:function:my-function"}, ""},
		{"lambda firehose contract", ProcessingHandler{Type: "lambda", Function: "f", Contract: "firehose", Qualifier: "$LATEST"}, ""},
		{"lambda qualifier", ProcessingHandler{Type: "lambda", Function: "f", Qualifier: "7"}, ""},
		{"lambda without function", ProcessingHandler{Type: "lambda"}, p + ".function"},
		{"lambda function with a space", ProcessingHandler{Type: "lambda", Function: "my function"}, p + ".function"},
		{"lambda function too long", ProcessingHandler{Type: "lambda", Function: strings.Repeat("f", 171)}, p + ".function"},
		{"lambda bad qualifier", ProcessingHandler{Type: "lambda", Function: "f", Qualifier: "a:b"}, p + ".qualifier"},
		{"lambda unknown contract", ProcessingHandler{Type: "lambda", Function: "f", Contract: "kinesis"}, p + ".contract"},
		{"lambda with a url", ProcessingHandler{Type: "lambda", Function: "f", URL: "http://x"}, p + ".url"},
		{"lambda with a timeout", ProcessingHandler{Type: "lambda", Function: "f", Timeout: time.Second}, p + ".timeout"},

		{"http", ProcessingHandler{Type: "http", URL: "http://127.0.0.1:9000/invoke"}, ""},
		{"http https with query", ProcessingHandler{Type: "http", URL: "https://fn.example.com/run?x=1", Contract: "lambda", Timeout: 15 * time.Minute}, ""},
		{"http without url", ProcessingHandler{Type: "http"}, p + ".url"},
		{"http url without scheme", ProcessingHandler{Type: "http", URL: "127.0.0.1:9000/invoke"}, p + ".url"},
		{"http url ftp", ProcessingHandler{Type: "http", URL: "ftp://host/x"}, p + ".url"},
		{"http url with fragment", ProcessingHandler{Type: "http", URL: "http://host/x#y"}, p + ".url"},
		{"http negative timeout", ProcessingHandler{Type: "http", URL: "http://h", Timeout: -time.Second}, p + ".timeout"},
		{"http timeout over 15m", ProcessingHandler{Type: "http", URL: "http://h", Timeout: 16 * time.Minute}, p + ".timeout"},
		{"http with a function", ProcessingHandler{Type: "http", URL: "http://h", Function: "f"}, p + ".function"},
		{"contract on json", ProcessingHandler{Type: "json", Contract: "lambda"}, p + ".contract"},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			errs := processingProblems(t, r.h)
			if r.key == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got:\n%v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Key != r.key {
				t.Fatalf("want exactly one error, for %s; got:\n%v", r.key, errs)
			}
		})
	}
}

func TestProcessingMessages(t *testing.T) {
	cases := []struct {
		h    ProcessingHandler
		want string
	}{
		{ProcessingHandler{Type: "lambda", Function: "f", URL: "http://x"},
			`processing.handlers[0].url: is set but the handler's type is "lambda": it is used only by http handlers`},
		{ProcessingHandler{Type: "json", Contract: "firehose"},
			`processing.handlers[0].contract: is set but the handler's type is "json": it is used only by lambda or http handlers`},
		{ProcessingHandler{Type: "filter", Patterns: slices.Repeat([]string{`{"data": {"a": ["1"]}}`}, 6)},
			`processing.handlers[0].patterns: 6 patterns are too many: Lambda allows at most 5 per event source mapping`},
		{ProcessingHandler{Type: "filter", Patterns: []string{`{"Data": {"a": ["1"]}}`}},
			`processing.handlers[0].patterns[0]: "{\"Data\": {\"a\": [\"1\"]}}" is not a valid filter pattern: Data: unknown field: a Kinesis pattern tests "data", "partitionKey", "sequenceNumber" or "approximateArrivalTimestamp"`},
		{ProcessingHandler{Type: "filter", Patterns: []string{`{"data": {"amount": [{"numeric": [">", "5"]}]}}`}},
			`processing.handlers[0].patterns[0]: "{\"data\": {\"amount\": [{\"numeric\": [\">\", \"5\"]}]}}" is not a valid filter pattern: data.amount[0]: numeric: the value after ">" must be a number, got "5"`},
		{ProcessingHandler{Type: "http", URL: "http://h", Timeout: 16 * time.Minute},
			`processing.handlers[0].timeout: 16m0s is out of range: allowed 0s to 15m0s (0 means 30s; Lambda functions run at most 15m)`},
		{ProcessingHandler{Type: "enrich", Categories: []EnrichCategory{{Field: "a", Into: "b", Ranges: []EnrichRange{{Below: fp(200), Value: "x"}, {Below: fp(50), Value: "y"}}}}},
			`processing.handlers[0].categories[0].ranges[1]: 50 can never apply: the ranges before it already hold every number up to 200; bounds must rise`},
	}
	for _, c := range cases {
		if got := processingProblems(t, c.h).Error(); got != c.want {
			t.Errorf("message\n got %s\nwant %s", got, c.want)
		}
	}
}

// Every handler is checked, each under its own index.
func TestProcessingNamesEachHandler(t *testing.T) {
	errs := processingProblems(t,
		ProcessingHandler{Type: "json"},
		ProcessingHandler{Type: "lambda"},
		ProcessingHandler{Type: "http", URL: "nope"},
	)
	want := []string{"processing.handlers[1].function", "processing.handlers[2].url"}
	if got := keysOf(errs); !slices.Equal(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
}

func TestProcessingDefaults(t *testing.T) {
	if Defaults().Processing.Handlers != nil {
		t.Error("the default processing has handlers")
	}
	h := ProcessingHandler{Type: "http"}
	if h.ContractOrDefault() != ContractLambda || h.TimeoutOrDefault() != DefaultHTTPHandlerTimeout {
		t.Errorf("defaults: contract %q, timeout %s", h.ContractOrDefault(), h.TimeoutOrDefault())
	}
	h.Contract, h.Timeout = ContractFirehose, time.Second
	if h.ContractOrDefault() != ContractFirehose || h.TimeoutOrDefault() != time.Second {
		t.Errorf("set: contract %q, timeout %s", h.ContractOrDefault(), h.TimeoutOrDefault())
	}
}

// The example loads, validates, and shows every key of a handler.
func TestProcessingExample(t *testing.T) {
	b, err := os.ReadFile(processingExample)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{Path: writeFile(t, string(b)+minimalFile), Environ: noEnv})
	if err != nil {
		t.Fatalf("Load(%s + a stream and a sink): %v", processingExample, err)
	}
	hs := cfg.Processing.Handlers
	var types []string
	for _, h := range hs {
		types = append(types, h.Type)
	}
	if !slices.Equal(types, []string{"json", "filter", "enrich", "lambda", "http"}) {
		t.Fatalf("handler types = %v", types)
	}
	want := ProcessingHandler{
		Type:           "enrich",
		Fields:         map[string]any{"processing_status": "SUCCESS"},
		TimestampField: "processed_timestamp",
		Categories: []EnrichCategory{
			{Field: "amount", Into: "amount_category", Ranges: []EnrichRange{{UpTo: fp(100), Value: "low"}, {Value: "high"}}},
			{Field: "amount", Into: "amount_band", Ranges: []EnrichRange{{Below: fp(50), Value: "small"}, {Below: fp(200), Value: "medium"}, {Value: "large"}}},
		},
	}
	if !reflect.DeepEqual(hs[2], want) {
		t.Errorf("enrich entry:\n got %+v\nwant %+v", hs[2], want)
	}
	if hs[4].Timeout != 30*time.Second || hs[4].Contract != "firehose" || hs[3].Function != "shardhose-transform" {
		t.Errorf("lambda %+v, http %+v", hs[3], hs[4])
	}

	// Every key of ProcessingHandler, EnrichCategory and EnrichRange appears in some entry.
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := raw["processing"].(map[string]any)["handlers"].([]any)
	inFile := map[string]bool{}
	for _, e := range entries {
		for k, v := range e.(map[string]any) {
			inFile[k] = true
			if k != "categories" {
				continue
			}
			for _, c := range v.([]any) {
				for ck, cv := range c.(map[string]any) {
					inFile["categories[]."+ck] = true
					if ck == "ranges" {
						for _, r := range cv.([]any) {
							for rk := range r.(map[string]any) {
								inFile["categories[].ranges[]."+rk] = true
							}
						}
					}
				}
			}
		}
	}
	inType := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[ProcessingHandler]()) {
		inType[tagName(f)] = true
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[EnrichCategory]()) {
		inType["categories[]."+tagName(f)] = true
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[EnrichRange]()) {
		inType["categories[].ranges[]."+tagName(f)] = true
	}
	if !maps.Equal(inFile, inType) {
		t.Errorf("%s shows keys\n%v\nthe types have\n%v", processingExample, slices.Sorted(maps.Keys(inFile)), slices.Sorted(maps.Keys(inType)))
	}
}

func TestLoadProcessingErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key with a suggestion", `
processing:
  handlers:
    - type: filter
      pattern: ['{"data": {"a": ["1"]}}']
`, []string{"processing.handlers[0].pattern: unknown key: did you mean processing.handlers[0].patterns?", "processing.handlers[0].patterns: missing"}},
		{"bound not a number", `
processing:
  handlers:
    - type: enrich
      categories:
        - {field: amount, into: c, ranges: [{below: lots, value: x}]}
`, []string{`processing.handlers[0].categories[0].ranges[0].below: "lots" is not a number`}},
		{"timeout without a unit", `
processing:
  handlers:
    - {type: http, url: "http://h", timeout: 30}
`, []string{"processing.handlers[0].timeout: 30 has no unit"}},
		{"handlers not a list", `
processing:
  handlers: json
`, []string{"processing.handlers"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(LoadOptions{Path: writeFile(t, c.yaml+minimalFile), Environ: noEnv})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}

	// Numbers in ranges may be written as integers or decimals.
	cfg, err := Load(LoadOptions{Path: writeFile(t, `
processing:
  handlers:
    - type: enrich
      categories:
        - {field: amount, into: c, ranges: [{below: 50, value: a}, {up_to: 99.5, value: b}, {value: c}]}
`+minimalFile), Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	rs := cfg.Processing.Handlers[0].Categories[0].Ranges
	if *rs[0].Below != 50 || *rs[1].UpTo != 99.5 || rs[2].Below != nil || rs[2].UpTo != nil {
		t.Errorf("ranges = %+v", rs)
	}
}

// Firehose always has somewhere for processing-failed records: its S3 destination's error
// prefix. So does shardhose: processing.error_output.bucket defaults to the first S3 sink's.
func TestFirehoseContractErrorOutputDefaultsToTheFirstS3Bucket(t *testing.T) {
	const sinks = `
stream: {name: orders}
sinks:
  - {name: debug, type: file, file: {path: "-"}}
  - {name: archive, type: s3, s3: {bucket: archive-bucket}}
  - {name: other, type: s3, s3: {bucket: other-bucket}}
`
	load := func(processing string) Config {
		t.Helper()
		cfg, err := Load(LoadOptions{Path: writeFile(t, sinks+processing), Environ: noEnv})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return cfg
	}
	cfg := load(`processing:
  handlers: [{type: http, url: "http://127.0.0.1:9000/transform", contract: firehose}]
`)
	if got := cfg.Processing.ErrorOutput; got.Bucket != "archive-bucket" || got.Prefix != "errors/" {
		t.Errorf("error output = %+v, want the first S3 sink's bucket under errors/", got)
	}
	cfg = load(`processing:
  handlers: [{type: http, url: "http://127.0.0.1:9000/transform", contract: firehose}]
  error_output: {bucket: errors-bucket, prefix: failed/}
`)
	if got := cfg.Processing.ErrorOutput; got.Bucket != "errors-bucket" || got.Prefix != "failed/" {
		t.Errorf("error output = %+v, want the configured one", got)
	}
	cfg = load(`processing:
  handlers: [{type: http, url: "http://127.0.0.1:9000/fn"}]
`)
	if got := cfg.Processing.ErrorOutput.Bucket; got != "" {
		t.Errorf("error output bucket = %q under the Lambda contract, which has no ProcessingFailed: want none", got)
	}
}

// With no S3 location at all and no dead-letter destination, a ProcessingFailed record could
// never be stored and its shard would never move on: the configuration is refused.
func TestFirehoseContractWithNowhereForProcessingFailedIsRefused(t *testing.T) {
	const noS3 = `
stream: {name: orders}
sinks:
  - {name: debug, type: file, file: {path: "-"}}
`
	for _, h := range []string{
		`{type: http, url: "http://127.0.0.1:9000/transform", contract: firehose}`,
		`{type: lambda, function: transform, contract: firehose}`,
	} {
		_, err := Load(LoadOptions{Path: writeFile(t, noS3+"processing:\n  handlers: [{type: json}, "+h+"]\n"), Environ: noEnv})
		if err == nil {
			t.Fatalf("%s with no S3 sink, no error_output.bucket and no dead_letter was accepted", h)
		}
		var fe FieldError
		for _, e := range asErrors(t, err) {
			if e.Key == "processing.handlers[1].contract" {
				fe = e
			}
		}
		if fe.Key == "" || !strings.Contains(fe.Problem, "processing.error_output.bucket") || !strings.Contains(fe.Problem, "dead_letter.type") {
			t.Fatalf("%s: problems %v, want one at processing.handlers[1].contract naming processing.error_output.bucket and dead_letter.type", h, err)
		}
	}
	ok := []string{
		"processing:\n  handlers: [{type: http, url: \"http://h\", contract: firehose}]\n  error_output: {bucket: errors-bucket}\n",
		"processing:\n  handlers: [{type: http, url: \"http://h\", contract: firehose}]\ndead_letter: {type: file, file: {path: /tmp/dl.jsonl}}\n",
		"processing:\n  handlers: [{type: http, url: \"http://h\"}]\n",
	}
	for _, p := range ok {
		if _, err := Load(LoadOptions{Path: writeFile(t, noS3+p), Environ: noEnv}); err != nil {
			t.Errorf("Load(%s): %v", p, err)
		}
	}
}

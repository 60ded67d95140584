package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable that sets a configuration key. After the prefix,
// a double underscore separates levels and the name is lower-cased: SHARDHOSE_STREAM__NAME sets
// stream.name, SHARDHOSE_LEASES__LEASE_DURATION sets leases.lease_duration. Sinks are a list and
// are addressed by index: SHARDHOSE_SINKS__0__S3__BUCKET sets the bucket of the first sink; an
// index one past the last entry adds a sink.
//
// A SHARDHOSE_ variable with no double underscore is a config key only if it starts with the name
// of a section (SHARDHOSE_STREAM_NAME is reported as a mistake); others, such as SHARDHOSE_CONFIG
// or SHARDHOSE_TEST_*, are left for whoever reads them, as are the commands' own variables below.
const EnvPrefix = "SHARDHOSE_"

// commandVariables are SHARDHOSE_ variables that commands read for themselves although their
// names start with a section's: they are not config keys, nor mistakes.
var commandVariables = []string{
	"SHARDHOSE_METRICS_URL", // shardhose loadtest --metrics-url
}

// envLevelSep separates levels in an environment variable's name.
const envLevelSep = "__"

// LoadOptions says where Load reads configuration from. The zero value reads only the defaults
// and the process environment.
type LoadOptions struct {
	// Path is the YAML file to read. Empty means no file: defaults, environment and flags only.
	Path string
	// Environ returns the environment as "NAME=value" strings. Nil means os.Environ.
	Environ func() []string
	// Flags is a parsed flag set, or nil. Only flags defined by RegisterFlags and changed by the
	// user are applied; other flags in the set are ignored.
	Flags *pflag.FlagSet
	// WorkerID, when set, names this worker when no source sets leases.worker_id (the daemon
	// asks the ECS task metadata); an empty result falls back to "<hostname>-<pid>".
	WorkerID func() string
}

// flagKeys maps each flag RegisterFlags defines to the key it sets.
var flagKeys = map[string]string{
	"stream-name":  "stream.name",
	"worker-id":    "leases.worker_id",
	"log-level":    "log.level",
	"log-format":   "log.format",
	"aws-endpoint": "aws.endpoint",
	"aws-region":   "aws.region",
}

// RegisterFlags defines on fs the flags Load applies over the file and the environment:
// --stream-name, --worker-id, --log-level, --log-format, --aws-endpoint and --aws-region. A flag
// overrides its key only when given on the command line; its empty default never does.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("stream-name", "", "Kinesis stream to consume (stream.name)")
	fs.String("worker-id", "", "this worker's name in the lease table (leases.worker_id; default hostname-pid)")
	registerClientFlags(fs)
}

// RegisterProducerFlags defines the flags of RegisterFlags that concern a command sending to the
// stream rather than consuming it: all but --worker-id.
func RegisterProducerFlags(fs *pflag.FlagSet) {
	fs.String("stream-name", "", "Kinesis stream to send to (stream.name)")
	registerClientFlags(fs)
}

func registerClientFlags(fs *pflag.FlagSet) {
	fs.String("log-level", "", "log level: debug, info, warn or error (log.level)")
	fs.String("log-format", "", "log format: auto, json or text (log.format)")
	fs.String("aws-endpoint", "", "one endpoint URL for every AWS service, e.g. an emulator (aws.endpoint)")
	fs.String("aws-region", "", "AWS region (aws.region)")
}

// Load builds the configuration: Defaults, then the YAML file at opts.Path, then SHARDHOSE_*
// environment variables (see EnvPrefix), then the flags the user set (see RegisterFlags), each
// overriding the last. Every sink's s3 section starts from S3Defaults. It then fills derived
// defaults (ApplyDerivedDefaults) and validates.
//
// A file that cannot be read or parsed is reported as a wrapped error. Everything else wrong,
// unknown keys and values of the wrong type included, is reported together with the Validate
// problems as one Errors value, one entry per key. The returned Config is filled as far as
// decoding got even when the error is non-nil, so it can be shown to the user.
func Load(opts LoadOptions) (Config, error) {
	cfg, problems, err := decode(opts)
	if err != nil {
		return cfg, err
	}
	if cfg.Leases.WorkerID == "" && opts.WorkerID != nil {
		cfg.Leases.WorkerID = opts.WorkerID()
	}
	cfg.ApplyDerivedDefaults()
	var verrs Errors
	if err := cfg.Validate(); err != nil && !errors.As(err, &verrs) {
		return cfg, err
	}
	problems = problems.merge(verrs)
	if len(problems) > 0 {
		return cfg, problems
	}
	return cfg, nil
}

// ApplyDerivedDefaults fills the keys whose default depends on the machine or on other keys:
// leases.worker_id becomes "<hostname>-<pid>" when empty, and with a Firehose-contract handler
// an empty processing.error_output.bucket becomes the first S3 sink's bucket (Firehose writes
// processing-failed records under its S3 destination's error prefix). Load calls it; call it
// yourself before Validate on a Config built in code.
func (c *Config) ApplyDerivedDefaults() {
	if c.Processing.ErrorOutput.Bucket == "" && c.Processing.MayFailRecords() {
		for _, s := range c.Sinks {
			if s.Type == "s3" && s.S3 != nil && s.S3.Bucket != "" {
				c.Processing.ErrorOutput.Bucket = s.S3.Bucket
				break
			}
		}
	}
	if c.Leases.WorkerID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "shardhose"
		}
		c.Leases.WorkerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
}

// decode merges the sources and decodes them onto the defaults, without derived defaults or
// validation. A non-nil error means a source could not be read at all.
func decode(opts LoadOptions) (Config, Errors, error) {
	cfg := Defaults()
	k := koanf.New(".")
	if opts.Path != "" {
		if err := k.Load(file.Provider(opts.Path), yaml.Parser()); err != nil {
			return cfg, nil, fmt.Errorf("load config file %s: %w", opts.Path, err)
		}
	}

	var problems Errors
	envKeys, envProblems, err := mergeEnv(k, opts.Environ)
	if err != nil {
		return cfg, nil, err
	}
	problems = append(problems, envProblems...)

	if opts.Flags != nil {
		fs := opts.Flags
		p := posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
			key, ok := flagKeys[f.Name]
			if !ok {
				return "", nil
			}
			return key, posflag.FlagVal(fs, f)
		})
		if err := k.Load(p, nil); err != nil {
			return cfg, nil, fmt.Errorf("read command-line flags: %w", err)
		}
	}

	cfg.Sinks = sinkShells(k.Get("sinks"))
	err = k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook:  scalarHook,
			ErrorUnused: true,
			// Keys match their tag exactly: "Stream" or "batchSize" is an unknown key, not a
			// silent alias.
			MatchName: func(mapKey, fieldName string) bool { return mapKey == fieldName },
		},
	})
	if err != nil {
		problems = append(problems, decodeProblems(err, envKeys)...)
	}
	return cfg, problems, nil
}

// sinkShells returns one Sink per entry of the raw sinks list, each with an s3 section holding
// S3Defaults when the entry has an s3 key, so that decoding fills only the keys the entry sets.
func sinkShells(raw any) []Sink {
	list, ok := raw.([]any)
	if !ok {
		return nil
	}
	out := make([]Sink, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		if _, has := m["s3"]; has {
			d := S3Defaults()
			out[i].S3 = &d
		}
		if _, has := m["http"]; has {
			d := HTTPDefaults()
			out[i].HTTP = &d
		}
		if _, has := m["opensearch"]; has {
			d := OpenSearchDefaults()
			out[i].OpenSearch = &d
		}
		if _, has := m["firehose"]; has {
			d := FirehoseDefaults()
			out[i].Firehose = &d
		}
		if _, has := m["file"]; has {
			d := FileDefaults()
			out[i].File = &d
		}
	}
	return out
}

// mapProvider is a koanf.Provider over an already nested map.
type mapProvider map[string]any

func (m mapProvider) Read() (map[string]any, error) { return m, nil }
func (m mapProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("map provider reads maps, not bytes")
}

// mergeEnv merges the SHARDHOSE_* variables into k. It returns the keys they set (in decoder
// notation, sinks[0].s3.bucket) with the variable that set each, and the variables that cannot be
// config keys.
func mergeEnv(k *koanf.Koanf, environ func() []string) (map[string]string, Errors, error) {
	if environ == nil {
		environ = os.Environ
	}
	sections := topLevelKeys()
	envKeys := map[string]string{}
	var problems Errors
	transform := func(name, value string) (string, any) {
		rest := strings.TrimPrefix(name, EnvPrefix)
		lower := strings.ToLower(rest)
		if slices.Contains(commandVariables, name) {
			return "", nil
		}
		if !strings.Contains(rest, envLevelSep) {
			for _, s := range sections {
				if lower == s || strings.HasPrefix(lower, s+"_") {
					problems = append(problems, FieldError{
						Key:     name,
						Problem: fmt.Sprintf("is not a config key: separate levels with a double underscore, e.g. %s%s%s%s", EnvPrefix, strings.ToUpper(s), envLevelSep, strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(lower, s), "_"))),
					})
					return "", nil
				}
			}
			return "", nil // not a config variable
		}
		parts := strings.Split(lower, envLevelSep)
		if slices.Contains(parts, "") || strings.Contains(lower, ".") {
			problems = append(problems, FieldError{
				Key:     name,
				Problem: "is not a config key: each level between double underscores must be a key name",
			})
			return "", nil
		}
		key := strings.Join(parts, ".")
		envKeys[decoderKey(key)] = name
		return key, value
	}
	ek := koanf.New(".")
	if err := ek.Load(env.Provider(".", env.Opt{Prefix: EnvPrefix, TransformFunc: transform, EnvironFunc: environ}), nil); err != nil {
		return nil, nil, fmt.Errorf("read environment: %w", err)
	}
	raw := ek.Raw()
	envSinks, hasSinks := raw["sinks"]
	delete(raw, "sinks")
	if err := k.Load(mapProvider(raw), nil); err != nil {
		return nil, nil, fmt.Errorf("merge environment: %w", err)
	}
	if !hasSinks {
		return envKeys, problems, nil
	}

	byIndex, ok := envSinks.(map[string]any)
	if !ok { // SHARDHOSE_SINKS__=... is rejected above; a bare value cannot reach here
		return envKeys, append(problems, FieldError{Key: "sinks", Problem: "cannot be set as one variable: set keys of one entry, e.g. SHARDHOSE_SINKS__0__S3__BUCKET"}), nil
	}
	list, _ := k.Get("sinks").([]any)
	if k.Exists("sinks") && list == nil {
		return envKeys, append(problems, FieldError{Key: "sinks", Problem: "is not a list in the file, so SHARDHOSE_SINKS__<index>__ variables cannot address its entries"}), nil
	}
	type entry struct {
		index int
		keys  map[string]any
	}
	var entries []entry
	for idx, v := range byIndex {
		i, err := strconv.Atoi(idx)
		m, isMap := v.(map[string]any)
		if err != nil || i < 0 || !isMap {
			problems = append(problems, FieldError{Key: "sinks." + idx, Problem: "is not a sink entry: address sinks by index, e.g. SHARDHOSE_SINKS__0__S3__BUCKET" + setBy(envKeys, "sinks."+idx)})
			continue
		}
		entries = append(entries, entry{i, m})
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.index - b.index })
	for _, e := range entries {
		switch {
		case e.index < len(list):
			base, ok := list[e.index].(map[string]any)
			if !ok {
				problems = append(problems, FieldError{Key: fmt.Sprintf("sinks[%d]", e.index), Problem: "is not a map in the file, so environment variables cannot set its keys"})
				continue
			}
			list[e.index] = mergeMaps(base, e.keys)
		case e.index == len(list):
			list = append(list, e.keys)
		default:
			problems = append(problems, FieldError{
				Key:     fmt.Sprintf("sinks[%d]", e.index),
				Problem: fmt.Sprintf("does not exist: %d sink(s) are defined before the environment, which can add only sinks[%d]%s", len(list), len(list), setBy(envKeys, fmt.Sprintf("sinks[%d]", e.index))),
			})
		}
	}
	if err := k.Set("sinks", list); err != nil {
		return nil, nil, fmt.Errorf("merge sinks from the environment: %w", err)
	}
	return envKeys, problems, nil
}

// mergeMaps returns base with over's keys laid on top, recursing into maps both have.
func mergeMaps(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		if om, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// decoderKey turns a dotted key into the decoder's notation for list entries:
// sinks.0.s3.bucket becomes sinks[0].s3.bucket.
func decoderKey(key string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		if _, err := strconv.Atoi(p); err == nil && i > 0 {
			b.WriteString("[" + p + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// topLevelKeys returns the koanf tags of Config's fields.
func topLevelKeys() []string {
	t := reflect.TypeFor[Config]()
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		out = append(out, tagName(t.Field(i)))
	}
	return out
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	return name
}

// valueError is a decoding problem that knows the offending value.
type valueError struct {
	value   any
	problem string
}

func (e *valueError) Error() string { return show(e.value) + " " + e.problem }

var durationType = reflect.TypeFor[time.Duration]()

// scalarHook converts the values a YAML file, the environment (always strings) and flags produce
// into the field's type, strictly: "abc" is not a number, 1.5 is not a whole number, true is not
// a number, and a duration needs a unit ("10s"), since a bare 10 would be 10 nanoseconds.
func scalarHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if data == nil {
		return nil, nil
	}
	v := reflect.ValueOf(data)
	if to == durationType {
		switch {
		case v.Type() == durationType:
			return data, nil
		case v.Kind() == reflect.String:
			s := strings.TrimSpace(v.String())
			d, err := time.ParseDuration(s)
			if err != nil {
				return nil, &valueError{data, `is not a duration: write a number with a unit, e.g. "500ms", "10s" or "5m"`}
			}
			return d, nil
		case isNumber(v) && numberValue(v) == 0:
			return time.Duration(0), nil
		case isNumber(v):
			return nil, &valueError{data, `has no unit: write a duration such as "10s" or "500ms"`}
		default:
			return nil, &valueError{data, `is not a duration: write a number with a unit, e.g. "10s"`}
		}
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch {
		case v.Kind() == reflect.String:
			i, err := strconv.ParseInt(strings.TrimSpace(v.String()), 10, 64)
			if err != nil {
				return nil, &valueError{data, "is not a whole number"}
			}
			return i, nil
		case v.Kind() == reflect.Float32 || v.Kind() == reflect.Float64:
			f := v.Float()
			if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return nil, &valueError{data, "is not a whole number"}
			}
			return int64(f), nil
		case v.Kind() == reflect.Bool:
			return nil, &valueError{data, "is not a whole number"}
		}
	case reflect.Float32, reflect.Float64:
		switch v.Kind() {
		case reflect.String:
			f, err := strconv.ParseFloat(strings.TrimSpace(v.String()), 64)
			if err != nil {
				return nil, &valueError{data, "is not a number"}
			}
			return f, nil
		case reflect.Bool:
			return nil, &valueError{data, "is not a number"}
		}
	case reflect.Bool:
		switch {
		case v.Kind() == reflect.String:
			b, err := strconv.ParseBool(strings.TrimSpace(v.String()))
			if err != nil {
				return nil, &valueError{data, "is not true or false"}
			}
			return b, nil
		case v.Kind() != reflect.Bool:
			return nil, &valueError{data, "is not true or false"}
		}
	case reflect.String:
		switch v.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return strconv.FormatInt(v.Int(), 10), nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return strconv.FormatUint(v.Uint(), 10), nil
		case reflect.String:
		default:
			return nil, &valueError{data, "is not text: quote it"}
		}
	}
	return data, nil
}

func isNumber(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func numberValue(v reflect.Value) float64 {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint())
	default:
		return v.Float()
	}
}

// decodeProblems turns the decoder's joined errors into one FieldError per key, naming unknown
// keys in full (stream.nmae) and, for keys set by the environment, the variable that set them.
func decodeProblems(err error, envKeys map[string]string) Errors {
	var out Errors
	fromEnv := func(key string) string { return setBy(envKeys, key) }
	var walk func(error)
	walk = func(e error) {
		// The decoder joins one error per field, nested by section, and wraps the whole in a
		// message; walk every branch instead of stopping at the first match errors.As would find.
		de, isDecode := e.(*mapstructure.DecodeError)
		if !isDecode {
			switch w := e.(type) {
			case interface{ Unwrap() []error }:
				for _, c := range w.Unwrap() {
					walk(c)
				}
			case interface{ Unwrap() error }:
				walk(w.Unwrap())
			default:
				out = append(out, FieldError{Problem: e.Error()})
			}
			return
		}
		inner := de.Unwrap()
		if list, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
			for _, name := range strings.Split(list, ", ") {
				key := joinKey(de.Name(), name)
				problem := "unknown key"
				if s := suggest(de.Name(), name); s != "" {
					problem += ": did you mean " + joinKey(de.Name(), s) + "?"
				}
				out = append(out, FieldError{Key: key, Problem: problem + fromEnv(key)})
			}
			return
		}
		fe := FieldError{Key: de.Name()}
		var ve *valueError
		var ut *mapstructure.UnconvertibleTypeError
		var pe *mapstructure.ParseError
		switch {
		case errors.As(inner, &ve):
			fe.Value, fe.Problem = show(ve.value), ve.problem
		case errors.As(inner, &ut):
			fe.Value, fe.Problem = show(ut.Value), "has the wrong type: want "+kindName(ut.Expected.Type())
		case errors.As(inner, &pe):
			fe.Value, fe.Problem = show(pe.Value), "is not a valid "+kindName(pe.Expected.Type())
		default:
			fe.Problem = inner.Error()
		}
		fe.Problem += fromEnv(fe.Key)
		out = append(out, fe)
	}
	walk(err)
	slices.SortStableFunc(out, func(a, b FieldError) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// setBy returns " (set by NAME)" when an environment variable set key or a key below it, else "".
func setBy(envKeys map[string]string, key string) string {
	if v, ok := envKeys[key]; ok {
		return " (set by " + v + ")"
	}
	var names []string
	for k, v := range envKeys {
		if strings.HasPrefix(k, key+".") || strings.HasPrefix(k, key+"[") {
			names = append(names, v)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return " (set by " + strings.Join(names, ", ") + ")"
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// kindName says in a user's words what a field of type t holds.
func kindName(t reflect.Type) string {
	if t == durationType {
		return `duration such as "10s"`
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "text"
	case reflect.Slice:
		return "list"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "section of keys"
	}
	return t.String()
}

// suggest returns the key of the section at parent (decoder notation) closest to name, or "".
func suggest(parent, name string) string {
	t := typeAt(parent)
	if t == nil {
		return ""
	}
	best, bestDist := "", 3 // suggest only within two edits
	for i := range t.NumField() {
		cand := tagName(t.Field(i))
		if d := editDistance(name, cand); d < bestDist {
			best, bestDist = cand, d
		}
	}
	return best
}

// typeAt returns the struct type at a decoder key such as "sinks[0].s3", or nil.
func typeAt(key string) reflect.Type {
	t := reflect.TypeFor[Config]()
	if key == "" {
		return t
	}
	for _, part := range strings.Split(key, ".") {
		name, _, indexed := strings.Cut(part, "[")
		f, ok := fieldByTag(t, name)
		if !ok {
			return nil
		}
		t = f.Type
		if indexed && t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
	}
	return t
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if tagName(t.Field(i)) == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// show formats a value as a user would write it: text quoted, everything else as is.
func show(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case time.Duration:
		return x.String()
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

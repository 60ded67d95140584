package s3

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/itchyny/gojq"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/s3/prefix"
)

// partitioner computes each record's partition for dynamic partitioning: the values of the
// partition keys the data prefix reads, from the record's JSON with the configured jq queries
// (compiled once) and from the transform's metadata.partitionKeys. It is safe for concurrent
// use: gojq's compiled code is.
type partitioner struct {
	keys     []prefix.Key
	queries  []*gojq.Code // per key; nil for a partitionKeyFromLambda key
	needJSON bool
	data     *prefix.Template
}

// newPartitioner compiles the queries the data prefix uses. Every problem is reported at once.
func newPartitioner(dp *config.DynamicPartitioning, data *prefix.Template) (*partitioner, error) {
	p := &partitioner{keys: data.Keys(), data: data}
	if len(p.keys) == 0 {
		return nil, errors.New("prefix: with dynamic partitioning the prefix must use at least one !{partitionKeyFromQuery:key} or !{partitionKeyFromLambda:key}")
	}
	var problems []error
	for _, name := range slices.Sorted(maps.Keys(dp.Queries)) {
		if !prefix.ValidKeyName(name) {
			problems = append(problems, fmt.Errorf("dynamic_partitioning.queries: key name %q: use letters, digits, _ and - only", name))
		}
	}
	compiled := map[string]*gojq.Code{}
	for _, k := range p.keys {
		if k.FromLambda {
			p.queries = append(p.queries, nil)
			continue
		}
		code, ok := compiled[k.Name]
		if !ok {
			var err error
			code, err = compileQuery(dp.Queries[k.Name])
			if err != nil {
				problems = append(problems, fmt.Errorf("dynamic_partitioning.queries.%s: %w", k.Name, err))
			}
			compiled[k.Name] = code
		}
		p.queries = append(p.queries, code)
		p.needJSON = true
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return p, nil
}

// compileQuery compiles a jq query as Firehose runs it: over one record, first output used.
func compileQuery(q string) (*gojq.Code, error) {
	if strings.TrimSpace(q) == "" {
		return nil, errors.New("the query is empty")
	}
	parsed, err := gojq.Parse(q)
	if err != nil {
		return nil, fmt.Errorf("parse jq query %q: %w", q, err)
	}
	code, err := gojq.Compile(parsed)
	if err != nil {
		return nil, fmt.Errorf("compile jq query %q: %w", q, err)
	}
	return code, nil
}

// partitionOf returns the partition key values of r, in the order of the data prefix's keys,
// or a partitioning failure. The values are checked against the 512-character limit of the
// evaluated prefix.
func (p *partitioner) partitionOf(r *record.Record) ([]string, *failure) {
	var doc any
	if p.needJSON {
		// Numbers decode to float64, as jq 1.6 (Firehose's jq) holds them.
		if err := json.Unmarshal(r.Data, &doc); err != nil {
			return nil, partitioningFailure(ErrorCodeMetadataExtractionFailed, "record is not one JSON value: %v", err)
		}
	}
	values := make([]string, len(p.keys))
	for i, k := range p.keys {
		if k.FromLambda {
			v, ok := r.PartitionKeys[k.Name]
			if !ok || v == "" {
				return nil, partitioningFailure(ErrorCodeMetadataExtractionFailed, "the transform returned no partition key %q", k.Name)
			}
			values[i] = v
			continue
		}
		v, err := runQuery(p.queries[i], doc)
		if err != nil {
			return nil, partitioningFailure(ErrorCodeMetadataExtractionFailed, "partition key %q: %v", k.Name, err)
		}
		values[i] = v
	}
	if n := p.data.Len(values, ""); n > prefix.MaxLen {
		return nil, partitioningFailure(ErrorCodePrefixTooLong, "the evaluated prefix would be %d characters; the limit is %d", n, prefix.MaxLen)
	}
	return values, nil
}

// runQuery runs a compiled query over doc and formats its first result as a partition key: a
// string as it is, a boolean as true or false, a number as jq 1.6 prints it (a double; no
// exponent from 1e-5 to 1e21). No result, null, an empty string, an array or an object is an
// error, as is an error from the query.
func runQuery(code *gojq.Code, doc any) (string, error) {
	iter := code.Run(doc)
	v, ok := iter.Next()
	if !ok {
		return "", errors.New("the query gave no result")
	}
	switch x := v.(type) {
	case error:
		return "", fmt.Errorf("the query failed: %w", x)
	case nil:
		return "", errors.New("the query gave null")
	case string:
		if x == "" {
			return "", errors.New("the query gave an empty string")
		}
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return formatFloat(x), nil
	case *big.Int:
		return x.String(), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return strconv.FormatInt(i, 10), nil
		}
		if f, err := x.Float64(); err == nil {
			return formatFloat(f), nil
		}
		return x.String(), nil
	}
	return "", fmt.Errorf("the query gave %s, not a string, number or boolean", jqType(v))
}

func formatFloat(f float64) string {
	if a := math.Abs(f); a == 0 || a >= 1e-5 && a < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func jqType(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

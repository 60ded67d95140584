package s3

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/lazyregexp"
	"github.com/shardhose/shardhose/sinks/s3/prefix"
)

// sinkNamePattern is Firehose's rule for delivery stream names, which become part of object names.
var sinkNamePattern = lazyregexp.NewBounded(`^[A-Za-z0-9_.-]+$`, 1, 64)

// keyBuilder makes object keys in Firehose's layout:
//
//	<evaluated prefix><name>-1-YYYY-MM-dd-HH-MM-SS-<uuid><ext>
//
// where the time, here and in the prefix's !{timestamp:...} expressions, is the arrival of the
// object's oldest record, in UTC. The "1" is Firehose's delivery stream version.
type keyBuilder struct {
	prefix *prefix.Template
	name   string
	ext    string
	random func() string
}

// key returns a new key for an object whose oldest record arrived at oldest, with the partition
// key values of its partition (nil without dynamic partitioning) and, for error objects, the
// error output type.
func (k keyBuilder) key(oldest time.Time, keys []string, errorOutputType string) string {
	return k.keyWithID(oldest, keys, errorOutputType, k.random())
}

// keyWithID is key with id in place of the random part: exactly-once objects are named after
// their shard and the position they start after, so that writing one again finds the same key.
func (k keyBuilder) keyWithID(oldest time.Time, keys []string, errorOutputType, id string) string {
	t := oldest.UTC()
	b := make([]byte, 0, k.prefix.Len(keys, errorOutputType)+len(k.name)+len(id)+32+len(k.ext))
	b = k.prefix.Append(b, prefix.Values{Time: t, Keys: keys, ErrorOutputType: errorOutputType})
	b = append(b, k.name...)
	b = append(b, "-1-"...)
	b = t.AppendFormat(b, "2006-01-02-15-04-05")
	b = append(b, '-')
	b = append(b, id...)
	b = append(b, k.ext...)
	return string(b)
}

// errorOutputTypes are the error output types this sink writes; the longest bounds the length
// of an evaluated error prefix.
var errorOutputTypes = []string{ErrorOutputFormatConversionFailed, ErrorOutputPartitioningFailed}

// dataPrefix parses the data prefix under Firehose's rules: partition keys only with dynamic
// partitioning (whose queries must be declared), and !{timestamp:yyyy/MM/dd/HH/} appended to a
// prefix that has no timestamp expression, unless dynamic partitioning is on (a partitioned
// prefix is used exactly as written). The empty prefix is therefore Firehose's default
// "YYYY/MM/dd/HH/". Without partition keys the evaluated length is checked here, once.
func dataPrefix(cfg config.S3Sink) (*prefix.Template, error) {
	dp := partitioning(cfg)
	t, err := prefix.Parse(cfg.Prefix, prefix.Rules{
		PartitionKeys: dp != nil,
		Queries: func(key string) bool {
			if dp == nil {
				return false
			}
			_, ok := dp.Queries[key]
			return ok
		},
	})
	if err != nil {
		return nil, fmt.Errorf("prefix %q: %w", cfg.Prefix, err)
	}
	if dp == nil && !t.HasTimestamp() {
		t = t.WithTime(prefix.DefaultTimePattern)
	}
	if len(t.Keys()) == 0 {
		if n := t.Len(nil, ""); n > prefix.MaxLen {
			return nil, fmt.Errorf("prefix %q evaluates to %d characters; the limit is %d", cfg.Prefix, n, prefix.MaxLen)
		}
	}
	return t, nil
}

// errorPrefix builds the prefix of error output objects, Firehose's way:
//   - error_output_prefix empty: "<prefix><error-output-type>/YYYY/MM/dd/HH/". Only a prefix with
//     no expressions allows this (and not with dynamic partitioning), as in Firehose.
//   - error_output_prefix without expressions: "<error_output_prefix><error-output-type>/YYYY/MM/dd/HH/".
//   - error_output_prefix with expressions: evaluated as written; it must use
//     !{firehose:error-output-type} and cannot use partition keys.
func errorPrefix(cfg config.S3Sink) (*prefix.Template, error) {
	var t *prefix.Template
	switch ep := cfg.ErrorOutputPrefix; {
	case ep == "":
		if strings.Contains(cfg.Prefix, "!{") || partitioning(cfg) != nil {
			return nil, errors.New("error_output_prefix: must be set when the prefix has expressions or dynamic partitioning is enabled (Firehose's rule): records that cannot be delivered go there")
		}
		t = literal(cfg.Prefix)
	case !strings.Contains(ep, "!{"):
		t = literal(ep)
	default:
		var err error
		t, err = prefix.Parse(ep, prefix.Rules{Error: true})
		if err != nil {
			return nil, fmt.Errorf("error_output_prefix %q: %w", ep, err)
		}
	}
	if !t.HasExpressions() {
		t = t.WithErrorOutputType().WithLiteral("/").WithTime(prefix.DefaultTimePattern)
	}
	longest := ""
	for _, typ := range errorOutputTypes {
		if len(typ) > len(longest) {
			longest = typ
		}
	}
	if n := t.Len(nil, longest); n > prefix.MaxLen {
		return nil, fmt.Errorf("error_output_prefix evaluates to up to %d characters; the limit is %d", n, prefix.MaxLen)
	}
	return t, nil
}

// literal is a template of text with no expressions (checked by the caller).
func literal(s string) *prefix.Template {
	return prefix.MustParse("", prefix.Rules{}).WithLiteral(s)
}

// partitioning returns the dynamic partitioning section when it is enabled, else nil.
func partitioning(cfg config.S3Sink) *config.DynamicPartitioning {
	if dp := cfg.DynamicPartitioning; dp != nil && dp.Enabled {
		return dp
	}
	return nil
}

// randomUUID returns a random (version 4) UUID, Firehose's random part of object names.
func randomUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never returns an error
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:16])
	return string(b[:])
}

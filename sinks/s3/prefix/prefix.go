// Package prefix parses and evaluates Amazon Data Firehose's S3 prefix expressions, so that a
// prefix written for Firehose names the same objects under shardhose:
//
//	!{timestamp:<pattern>}            the arrival time (UTC) of the object's oldest record, formatted
//	                                  with a Java DateTimeFormatter pattern (see below)
//	!{partitionKeyFromQuery:<key>}    the value a dynamic-partitioning jq query gave the record
//	!{partitionKeyFromLambda:<key>}   the value a transform returned in metadata.partitionKeys
//	!{firehose:random-string}         11 random characters, new at every use
//	!{firehose:error-output-type}     the error output type (error prefixes only), e.g.
//	                                  format-conversion-failed
//
// Firehose's rules apply: the sequence "!{" appears only as the start of an expression; a data
// prefix may not use error-output-type; an error prefix that has any expression must use it, and
// may not use partition keys; an evaluated prefix is at most MaxLen characters. Every instance of
// !{timestamp:...} in one prefix evaluates to the same instant.
//
// Timestamp patterns support the pattern letters y and u (year: yy is two digits, yyyy four), M
// (month, 1 or 2 letters), d (day of month), H (hour 0-23), m (minute), s (second) and S (fraction
// of a second, 1 to 9 letters), with non-letters and 'quoted text' taken literally (” is a single
// quote). Other letters, and the reserved characters [ ] { } #, are rejected when the prefix is
// parsed: a prefix never fails at delivery time for its syntax.
//
// A Template is immutable and safe for concurrent use.
package prefix

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxLen is Firehose's limit on an evaluated prefix, in characters.
const MaxLen = 512

// RandomLen is the length of !{firehose:random-string}.
const RandomLen = 11

// DefaultTimePattern is what Firehose appends to a data prefix with no timestamp expression
// (when dynamic partitioning is off): !{timestamp:yyyy/MM/dd/HH/}.
const DefaultTimePattern = "yyyy/MM/dd/HH/"

// Namespaces and firehose values, as written in expressions.
const (
	nsTimestamp     = "timestamp"
	nsFirehose      = "firehose"
	nsQuery         = "partitionKeyFromQuery"
	nsLambda        = "partitionKeyFromLambda"
	valRandom       = "random-string"
	valErrorOutType = "error-output-type"
)

// Rules say which expressions a prefix may hold.
type Rules struct {
	// Error marks an error output prefix: !{firehose:error-output-type} is allowed (and required
	// as soon as the prefix has any expression) and partition keys are not.
	Error bool
	// PartitionKeys allows !{partitionKeyFromQuery:...} and !{partitionKeyFromLambda:...} in a
	// data prefix; without it they are reported as needing dynamic partitioning.
	PartitionKeys bool
	// Queries reports whether a partitionKeyFromQuery key is declared; nil declares none.
	Queries func(key string) bool
}

// Key is one partition key a template reads.
type Key struct {
	// FromLambda is true for !{partitionKeyFromLambda:Name}, false for !{partitionKeyFromQuery:Name}.
	FromLambda bool
	Name       string
}

// String returns the key as its expression is written.
func (k Key) String() string {
	if k.FromLambda {
		return "!{" + nsLambda + ":" + k.Name + "}"
	}
	return "!{" + nsQuery + ":" + k.Name + "}"
}

type segKind uint8

const (
	segLiteral segKind = iota
	segTime
	segKey
	segRandom
	segErrorType
)

type segment struct {
	kind  segKind
	text  string      // segLiteral
	time  []timePiece // segTime
	key   int         // segKey: index into Template.keys
	width int         // evaluated length of segLiteral and segTime
}

// Template is a parsed prefix.
type Template struct {
	source   string
	segs     []segment
	keys     []Key
	hasTime  bool
	hasExpr  bool
	fixedLen int // evaluated length without partition key values and the error output type
}

// Parse parses a prefix under r. The error says what is wrong and where, in the user's terms.
func Parse(s string, r Rules) (*Template, error) {
	t := &Template{source: s}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "!{")
		if i < 0 {
			t.literal(rest)
			break
		}
		t.literal(rest[:i])
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("expression %q has no closing }", rest[i:])
		}
		expr := rest[i : i+end+1]
		if err := t.expression(expr, r); err != nil {
			return nil, err
		}
		rest = rest[i+end+1:]
	}
	if r.Error && t.hasExpr && !t.uses(segErrorType) {
		return nil, errors.New("an error output prefix with expressions must include !{firehose:error-output-type}")
	}
	return t, nil
}

// MustParse is Parse for prefixes known to be valid; it panics otherwise.
func MustParse(s string, r Rules) *Template {
	t, err := Parse(s, r)
	if err != nil {
		panic(err)
	}
	return t
}

func (t *Template) literal(s string) {
	if s == "" {
		return
	}
	t.segs = append(t.segs, segment{kind: segLiteral, text: s, width: len(s)})
	t.fixedLen += len(s)
}

func (t *Template) expression(expr string, r Rules) error {
	inner := expr[2 : len(expr)-1]
	ns, val, ok := strings.Cut(inner, ":")
	if !ok || val == "" {
		return fmt.Errorf("expression %s: want !{namespace:value}", expr)
	}
	t.hasExpr = true
	switch ns {
	case nsTimestamp:
		pieces, width, err := parseTimePattern(val)
		if err != nil {
			return fmt.Errorf("expression %s: %w", expr, err)
		}
		t.segs = append(t.segs, segment{kind: segTime, time: pieces, width: width})
		t.fixedLen += width
		t.hasTime = true
	case nsFirehose:
		switch val {
		case valRandom:
			t.segs = append(t.segs, segment{kind: segRandom, width: RandomLen})
			t.fixedLen += RandomLen
		case valErrorOutType:
			if !r.Error {
				return fmt.Errorf("expression %s: only an error output prefix may use it", expr)
			}
			t.segs = append(t.segs, segment{kind: segErrorType})
		default:
			return fmt.Errorf("expression %s: the firehose namespace has %s and %s", expr, valRandom, valErrorOutType)
		}
	case nsQuery, nsLambda:
		switch {
		case r.Error:
			return fmt.Errorf("expression %s: an error output prefix cannot use partition keys", expr)
		case !r.PartitionKeys:
			return fmt.Errorf("expression %s: partition keys need dynamic_partitioning.enabled", expr)
		case !ValidKeyName(val):
			return fmt.Errorf("expression %s: a key name is letters, digits, _ and - only", expr)
		}
		k := Key{FromLambda: ns == nsLambda, Name: val}
		if !k.FromLambda && (r.Queries == nil || !r.Queries(val)) {
			return fmt.Errorf("expression %s: no query named %q in dynamic_partitioning.queries", expr, val)
		}
		idx := -1
		for j, have := range t.keys {
			if have == k {
				idx = j
			}
		}
		if idx < 0 {
			idx = len(t.keys)
			t.keys = append(t.keys, k)
		}
		t.segs = append(t.segs, segment{kind: segKey, key: idx})
	default:
		return fmt.Errorf("expression %s: unknown namespace %q (use timestamp, firehose, partitionKeyFromQuery or partitionKeyFromLambda)", expr, ns)
	}
	return nil
}

// ValidKeyName reports whether s can name a partition key: 1 or more of A-Z a-z 0-9 _ -.
func ValidKeyName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func (t *Template) uses(k segKind) bool {
	for _, s := range t.segs {
		if s.kind == k {
			return true
		}
	}
	return false
}

// String returns the prefix as written.
func (t *Template) String() string { return t.source }

// Keys returns the partition keys the template reads, each once, in order of first use. Values
// passed to Append and Len follow this order.
func (t *Template) Keys() []Key { return append([]Key(nil), t.keys...) }

// HasTimestamp reports whether the template has a !{timestamp:...} expression.
func (t *Template) HasTimestamp() bool { return t.hasTime }

// HasExpressions reports whether the template has any !{...} expression.
func (t *Template) HasExpressions() bool { return t.hasExpr }

// HasErrorOutputType reports whether the template has !{firehose:error-output-type}.
func (t *Template) HasErrorOutputType() bool { return t.uses(segErrorType) }

// WithTime returns a copy of t with !{timestamp:pattern} appended (pattern must be valid).
func (t *Template) WithTime(pattern string) *Template {
	pieces, width, err := parseTimePattern(pattern)
	if err != nil {
		panic(fmt.Sprintf("prefix: invalid time pattern %q: %v", pattern, err))
	}
	c := *t
	c.segs = append(append([]segment(nil), t.segs...), segment{kind: segTime, time: pieces, width: width})
	c.fixedLen += width
	c.hasTime = true
	c.hasExpr = true
	c.source = t.source + "!{timestamp:" + pattern + "}"
	return &c
}

// WithLiteral returns a copy of t with literal text appended.
func (t *Template) WithLiteral(s string) *Template {
	c := *t
	c.segs = append([]segment(nil), t.segs...)
	c.literal(s)
	c.source = t.source + s
	return &c
}

// WithErrorOutputType returns a copy of t with !{firehose:error-output-type} appended.
func (t *Template) WithErrorOutputType() *Template {
	c := *t
	c.segs = append(append([]segment(nil), t.segs...), segment{kind: segErrorType})
	c.hasExpr = true
	c.source = t.source + "!{firehose:error-output-type}"
	return &c
}

// Values are what a template is evaluated with.
type Values struct {
	// Time is the arrival of the object's oldest record; it is formatted in UTC.
	Time time.Time
	// Keys holds the partition key values, in the order of Template.Keys.
	Keys []string
	// ErrorOutputType replaces !{firehose:error-output-type}.
	ErrorOutputType string
}

// Len returns the length of the template evaluated with the given key values and error output
// type: exact, except that a 1-letter time field (M, d, H, m, s) counts as 2 digits and years
// beyond 9999 as 4, so it is never less than the evaluated length.
func (t *Template) Len(keys []string, errorOutputType string) int {
	n := t.fixedLen
	for _, s := range t.segs {
		switch s.kind {
		case segKey:
			if s.key < len(keys) {
				n += len(keys[s.key])
			}
		case segErrorType:
			n += len(errorOutputType)
		}
	}
	return n
}

// Append appends the evaluated template to dst. Missing key values evaluate to "".
func (t *Template) Append(dst []byte, v Values) []byte {
	at := v.Time.UTC()
	for _, s := range t.segs {
		switch s.kind {
		case segLiteral:
			dst = append(dst, s.text...)
		case segTime:
			dst = appendTime(dst, s.time, at)
		case segKey:
			if s.key < len(v.Keys) {
				dst = append(dst, v.Keys[s.key]...)
			}
		case segRandom:
			dst = appendRandom(dst)
		case segErrorType:
			dst = append(dst, v.ErrorOutputType...)
		}
	}
	return dst
}

// Eval returns the evaluated template.
func (t *Template) Eval(v Values) string {
	return string(t.Append(make([]byte, 0, t.Len(v.Keys, v.ErrorOutputType)), v))
}

const randomAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// appendRandom appends RandomLen random characters from [0-9a-z].
func appendRandom(dst []byte) []byte {
	var b [RandomLen]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	for _, c := range b {
		dst = append(dst, randomAlphabet[int(c)%len(randomAlphabet)])
	}
	return dst
}

// timePiece is literal text or one pattern field.
type timePiece struct {
	lit    string
	letter byte
	count  int
}

// parseTimePattern compiles a Java DateTimeFormatter pattern; width is its formatted length.
func parseTimePattern(p string) (pieces []timePiece, width int, err error) {
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			pieces = append(pieces, timePiece{lit: lit.String()})
			width += lit.Len()
			lit.Reset()
		}
	}
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\'':
			if i+1 < len(p) && p[i+1] == '\'' {
				lit.WriteByte('\'')
				i += 2
				continue
			}
			// Inside quotes, '' is a quote too.
			j := i + 1
			for {
				end := strings.IndexByte(p[j:], '\'')
				if end < 0 {
					return nil, 0, fmt.Errorf("unterminated quote in timestamp pattern %q", p)
				}
				lit.WriteString(p[j : j+end])
				j += end + 1
				if j < len(p) && p[j] == '\'' {
					lit.WriteByte('\'')
					j++
					continue
				}
				break
			}
			i = j
		case c == '[' || c == ']' || c == '{' || c == '}' || c == '#':
			return nil, 0, fmt.Errorf("timestamp pattern %q: %q is reserved; quote it to use it as text", p, c)
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			n := 1
			for i+n < len(p) && p[i+n] == c {
				n++
			}
			w, ok := fieldWidth(c, n)
			if !ok {
				return nil, 0, fmt.Errorf("timestamp pattern %q: %s is not supported (use yyyy, yy, MM, dd, HH, mm, ss, SSS, and quote literal letters, e.g. 'T')", p, strings.Repeat(string(c), n))
			}
			flush()
			pieces = append(pieces, timePiece{letter: c, count: n})
			width += w
			i += n
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	if len(pieces) == 0 {
		return nil, 0, errors.New("empty timestamp pattern")
	}
	return pieces, width, nil
}

// fieldWidth returns the formatted width of n letters c (years counted as 4 digits), and whether
// the field is supported.
func fieldWidth(c byte, n int) (int, bool) {
	switch c {
	case 'y', 'u':
		switch {
		case n == 2:
			return 2, true
		case n <= 9:
			return max(n, 4), true
		}
	case 'M', 'd', 'H', 'm', 's':
		if n <= 2 {
			return 2, true // a 1-letter field is 1 or 2 digits; count the longer
		}
	case 'S':
		if n <= 9 {
			return n, true
		}
	}
	return 0, false
}

func appendTime(dst []byte, pieces []timePiece, t time.Time) []byte {
	for _, p := range pieces {
		if p.letter == 0 {
			dst = append(dst, p.lit...)
			continue
		}
		switch p.letter {
		case 'y', 'u':
			y := t.Year()
			if p.count == 2 {
				dst = appendPadded(dst, y%100, 2)
			} else {
				dst = appendPadded(dst, y, p.count)
			}
		case 'M':
			dst = appendPadded(dst, int(t.Month()), p.count)
		case 'd':
			dst = appendPadded(dst, t.Day(), p.count)
		case 'H':
			dst = appendPadded(dst, t.Hour(), p.count)
		case 'm':
			dst = appendPadded(dst, t.Minute(), p.count)
		case 's':
			dst = appendPadded(dst, t.Second(), p.count)
		case 'S':
			frac := appendPadded(nil, t.Nanosecond(), 9)
			dst = append(dst, frac[:p.count]...)
		}
	}
	return dst
}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(dst []byte, n, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// Package eventfilter compiles and matches Lambda event filtering patterns (FilterCriteria), the
// rule language AWS Lambda, EventBridge and Event Ruler share, so that a pattern written for a
// Lambda event source mapping behaves the same in shardhose.
//
// A pattern is a JSON object whose structure mirrors the event. A field holding an object descends
// into the event; a field holding an array lists the allowed values of that leaf: the field matches
// when any one of them does (OR), and every field named must match (AND). Array elements are
// either exact values (a string, a number, true, false, null) or one operator object:
//
//	"s": ["purchase"]                              exact string (or number, true, false, null)
//	"s": [""]                                      the empty string
//	"s": [{"prefix": "us-"}]                       begins with (strings only)
//	"s": [{"suffix": ".png"}]                      ends with (strings only)
//	"s": [{"equals-ignore-case": "alice"}]         equal, ignoring case (strings only)
//	"s": [{"anything-but": "x"}]                   any value but these; also [..] of strings or of
//	                                               numbers, {"prefix": p}, {"suffix": s},
//	                                               {"equals-ignore-case": "x" or [..]}
//	"n": [{"numeric": [">", 0, "<=", 5]}]          numeric comparison ("=", or a lower bound > >=
//	                                               and/or an upper bound < <=; numbers only)
//	"f": [{"exists": true}]                        the leaf is present ({"exists": false}: absent)
//	"$or": [{...}, {...}]                          any of two or more sub-patterns at this level
//
// Matching follows Event Ruler: a number in a pattern matches a number of equal value (100 matches
// 100.0); an event array matches when any element does; a pattern object below an array of event
// objects must match within one element; exists looks at leaves only, so a field holding an object
// does not "exist" and {"exists": false} matches it. Wildcard and CIDR matching, which Lambda does
// not document, are rejected.
//
// A Pattern is immutable once compiled and safe for concurrent use.
package eventfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MaxPatterns is how many patterns one event source mapping may have in Lambda by default; a
// record passes when it matches any of them.
const MaxPatterns = 5

// NotJSON is the value to put in an event where a field's content could not be parsed (a Kinesis
// record whose data is not JSON): a pattern that looks into that field does not match, whatever
// its rules, while patterns that do not mention the field are unaffected.
var NotJSON any = notJSON{}

type notJSON struct{}

// Pattern is one compiled filter pattern.
type Pattern struct {
	root *node
	src  string
}

// node is one object level of a pattern: fields that must all match, and $or groups of which one
// alternative each must match.
type node struct {
	leaves  map[string][]rule
	objects map[string]*node
	ors     [][]*node
}

// String returns the pattern as it was written.
func (p *Pattern) String() string { return p.src }

// TopLevelKeys returns the field names the pattern tests at its top level, including those inside
// top-level $or alternatives, sorted and without repeats.
func (p *Pattern) TopLevelKeys() []string {
	var keys []string
	var walk func(n *node)
	walk = func(n *node) {
		for k := range n.leaves {
			keys = append(keys, k)
		}
		for k := range n.objects {
			keys = append(keys, k)
		}
		for _, alts := range n.ors {
			for _, a := range alts {
				walk(a)
			}
		}
	}
	walk(p.root)
	slices.Sort(keys)
	return slices.Compact(keys)
}

// Compile parses a pattern. The error says what is wrong and where (the dotted path of the field).
func Compile(src string) (*Pattern, error) {
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("pattern is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("pattern is not valid JSON: text follows the pattern object")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("pattern must be a JSON object")
	}
	root, err := compileObject(obj, "")
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root, src: src}, nil
}

func compileObject(obj map[string]any, path string) (*node, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("%s: empty objects are not allowed", where(path))
	}
	n := &node{leaves: map[string][]rule{}, objects: map[string]*node{}}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		p := join(path, k)
		if k == "$or" {
			alts, err := compileOr(v, path)
			if err != nil {
				return nil, err
			}
			n.ors = append(n.ors, alts)
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			child, err := compileObject(x, p)
			if err != nil {
				return nil, err
			}
			n.objects[k] = child
		case []any:
			rules, err := compileRules(x, p)
			if err != nil {
				return nil, err
			}
			n.leaves[k] = rules
		default:
			return nil, fmt.Errorf("%s: must be an object or an array of values, e.g. %q: [%s]", p, k, showJSON(v))
		}
	}
	return n, nil
}

func compileOr(v any, path string) ([]*node, error) {
	p := join(path, "$or")
	list, ok := v.([]any)
	if !ok || len(list) < 2 {
		return nil, fmt.Errorf("%s: must be an array of at least 2 objects", p)
	}
	alts := make([]*node, len(list))
	for i, e := range list {
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: must be an object", p, i)
		}
		for k := range obj {
			if _, reserved := operators[k]; reserved {
				return nil, fmt.Errorf("%s[%d]: %q is an operator, not a field name: write {\"field\": [{%q: ...}]}", p, i, k, k)
			}
		}
		n, err := compileObject(obj, path)
		if err != nil {
			return nil, err
		}
		alts[i] = n
	}
	return alts, nil
}

// operators are the names allowed in an operator object, with the ones Lambda does not document
// mapped to a reason.
var operators = map[string]string{
	"prefix": "", "suffix": "", "equals-ignore-case": "", "anything-but": "", "numeric": "", "exists": "",
	"wildcard": "is not supported by Lambda event filtering",
	"cidr":     "is not supported by Lambda event filtering",
}

func compileRules(list []any, path string) ([]rule, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: empty arrays are not allowed: list at least one value", path)
	}
	rules := make([]rule, 0, len(list))
	for i, e := range list {
		r, err := compileRule(e)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", path, i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// ruleKind says which test a rule applies.
type ruleKind int

const (
	exact ruleKind = iota
	prefix
	suffix
	equalsIgnoreCase
	anythingBut
	numeric
	exists
)

// rule is one element of a leaf's value list.
type rule struct {
	kind ruleKind
	// exact: the value (string, json.Number, bool or nil)
	value any
	// prefix, suffix, equals-ignore-case; anything-but with a string form
	text string
	// anything-but
	notStrings []string
	notNumbers []float64
	butForm    ruleKind // exact, prefix, suffix or equalsIgnoreCase
	// numeric: bounds; a nil bound is open-ended
	lower, upper         *float64
	lowerOpen, upperOpen bool
	// exists
	present bool
}

func compileRule(e any) (rule, error) {
	switch x := e.(type) {
	case string, bool, nil:
		return rule{kind: exact, value: x}, nil
	case json.Number:
		if _, err := x.Float64(); err != nil {
			return rule{}, fmt.Errorf("number %s is out of range", x)
		}
		return rule{kind: exact, value: x}, nil
	case []any:
		return rule{}, errors.New("nested arrays are not allowed: list values directly")
	case map[string]any:
		if len(x) != 1 {
			return rule{}, fmt.Errorf("an operator object has exactly one key, got %d: write [{\"prefix\": \"a\"}, {\"suffix\": \"b\"}] for several", len(x))
		}
		for op, arg := range x {
			return compileOperator(op, arg)
		}
	}
	return rule{}, fmt.Errorf("unsupported value %s", showJSON(e))
}

func compileOperator(op string, arg any) (rule, error) {
	why, known := operators[op]
	switch {
	case !known:
		return rule{}, fmt.Errorf("unknown operator %q: use prefix, suffix, equals-ignore-case, anything-but, numeric or exists", op)
	case why != "":
		return rule{}, fmt.Errorf("operator %q %s", op, why)
	}
	switch op {
	case "prefix", "suffix", "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return rule{}, fmt.Errorf("%s takes a string, got %s", op, showJSON(arg))
		}
		kind := map[string]ruleKind{"prefix": prefix, "suffix": suffix, "equals-ignore-case": equalsIgnoreCase}[op]
		return rule{kind: kind, text: s}, nil
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return rule{}, fmt.Errorf("exists takes true or false, got %s", showJSON(arg))
		}
		return rule{kind: exists, present: b}, nil
	case "numeric":
		return compileNumeric(arg)
	default: // anything-but
		return compileAnythingBut(arg)
	}
}

func compileAnythingBut(arg any) (rule, error) {
	r := rule{kind: anythingBut, butForm: exact}
	switch x := arg.(type) {
	case string:
		r.notStrings = []string{x}
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return rule{}, fmt.Errorf("anything-but: number %s is out of range", x)
		}
		r.notNumbers = []float64{f}
	case []any:
		if len(x) == 0 {
			return rule{}, errors.New("anything-but: the list is empty")
		}
		for _, e := range x {
			switch v := e.(type) {
			case string:
				r.notStrings = append(r.notStrings, v)
			case json.Number:
				f, err := v.Float64()
				if err != nil {
					return rule{}, fmt.Errorf("anything-but: number %s is out of range", v)
				}
				r.notNumbers = append(r.notNumbers, f)
			default:
				return rule{}, fmt.Errorf("anything-but: the list holds only strings or only numbers, not %s", showJSON(e))
			}
		}
		if len(r.notStrings) > 0 && len(r.notNumbers) > 0 {
			return rule{}, errors.New("anything-but: the list holds only strings or only numbers, not both")
		}
	case map[string]any:
		if len(x) != 1 {
			return rule{}, errors.New("anything-but: the object has exactly one key: prefix, suffix or equals-ignore-case")
		}
		for op, v := range x {
			switch op {
			case "prefix", "suffix":
				s, ok := v.(string)
				if !ok || s == "" {
					return rule{}, fmt.Errorf("anything-but %s takes a non-empty string, got %s", op, showJSON(v))
				}
				r.text = s
				r.butForm = map[string]ruleKind{"prefix": prefix, "suffix": suffix}[op]
			case "equals-ignore-case":
				r.butForm = equalsIgnoreCase
				switch s := v.(type) {
				case string:
					r.notStrings = []string{s}
				case []any:
					if len(s) == 0 {
						return rule{}, errors.New("anything-but equals-ignore-case: the list is empty")
					}
					for _, e := range s {
						str, ok := e.(string)
						if !ok {
							return rule{}, fmt.Errorf("anything-but equals-ignore-case takes strings only, not %s", showJSON(e))
						}
						r.notStrings = append(r.notStrings, str)
					}
				default:
					return rule{}, fmt.Errorf("anything-but equals-ignore-case takes a string or a list of strings, got %s", showJSON(v))
				}
			default:
				return rule{}, fmt.Errorf("anything-but: unsupported operator %q: use prefix, suffix or equals-ignore-case", op)
			}
		}
	default:
		return rule{}, fmt.Errorf("anything-but takes a string, a number, a list of either, or {prefix|suffix|equals-ignore-case: ...}, got %s", showJSON(arg))
	}
	return r, nil
}

func compileNumeric(arg any) (rule, error) {
	list, ok := arg.([]any)
	if !ok || (len(list) != 2 && len(list) != 4) {
		return rule{}, fmt.Errorf(`numeric takes ["op", number] or [">"|">=", low, "<"|"<=", high], got %s`, showJSON(arg))
	}
	term := func(i int) (string, float64, error) {
		op, ok := list[i].(string)
		if !ok {
			return "", 0, fmt.Errorf("numeric: %s is not an operator: use =, <, <=, > or >=", showJSON(list[i]))
		}
		n, ok := list[i+1].(json.Number)
		if !ok {
			return "", 0, fmt.Errorf("numeric: the value after %q must be a number, got %s", op, showJSON(list[i+1]))
		}
		f, err := n.Float64()
		if err != nil {
			return "", 0, fmt.Errorf("numeric: number %s is out of range", n)
		}
		return op, f, nil
	}
	op, f, err := term(0)
	if err != nil {
		return rule{}, err
	}
	r := rule{kind: numeric}
	switch op {
	case "=":
		r.lower, r.upper = &f, &f
		if len(list) == 4 {
			return rule{}, errors.New(`numeric: "=" stands alone: ["=", number]`)
		}
		return r, nil
	case ">", ">=":
		r.lower, r.lowerOpen = &f, op == ">"
	case "<", "<=":
		r.upper, r.upperOpen = &f, op == "<"
		if len(list) == 4 {
			return rule{}, errors.New(`numeric: write the lower bound first: [">", low, "<", high]`)
		}
		return r, nil
	default:
		return rule{}, fmt.Errorf("numeric: unknown operator %q: use =, <, <=, > or >=", op)
	}
	if len(list) == 2 {
		return r, nil
	}
	op2, g, err := term(2)
	if err != nil {
		return rule{}, err
	}
	if op2 != "<" && op2 != "<=" {
		return rule{}, fmt.Errorf("numeric: the second bound must be < or <=, got %q", op2)
	}
	if g < f || (g == f && (r.lowerOpen || op2 == "<")) {
		return rule{}, fmt.Errorf("numeric: the range %s %v, %s %v matches no number", op, f, op2, g)
	}
	r.upper, r.upperOpen = &g, op2 == "<"
	return r, nil
}

// Match reports whether event matches the pattern. event is decoded JSON: maps of string to value,
// slices, strings, numbers (json.Number or float64), bools and nil; NotJSON marks a field whose
// content could not be parsed.
func (p *Pattern) Match(event any) bool {
	if event == NotJSON {
		return false
	}
	return p.root.match(event)
}

// MatchJSON decodes data and matches it; data that is not JSON matches no pattern.
func (p *Pattern) MatchJSON(data []byte) bool {
	v, err := Decode(data)
	if err != nil {
		return false
	}
	return p.Match(v)
}

// Decode parses JSON the way Match expects (numbers as json.Number, so large integers keep their
// digits). It fails on empty input and on anything after the first value.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("text follows the JSON value")
		}
		return nil, err
	}
	return v, nil
}

func (n *node) match(v any) bool {
	obj, _ := v.(map[string]any)
	for k, rules := range n.leaves {
		val, present := obj[k]
		if !matchLeaf(rules, val, present) {
			return false
		}
	}
	for k, child := range n.objects {
		val := obj[k]
		if val == NotJSON {
			return false
		}
		objs := objectsIn(val, nil)
		if len(objs) == 0 {
			// Nothing to descend into: only absence rules can hold below.
			if !child.match(nil) {
				return false
			}
			continue
		}
		if !slices.ContainsFunc(objs, func(o map[string]any) bool { return child.match(o) }) {
			return false
		}
	}
	for _, alts := range n.ors {
		if !slices.ContainsFunc(alts, func(a *node) bool { return a.match(v) }) {
			return false
		}
	}
	return true
}

// objectsIn collects the objects in v, looking through arrays.
func objectsIn(v any, out []map[string]any) []map[string]any {
	switch x := v.(type) {
	case map[string]any:
		out = append(out, x)
	case []any:
		for _, e := range x {
			out = objectsIn(e, out)
		}
	}
	return out
}

// leavesIn collects the non-object, non-array values in v, looking through arrays.
func leavesIn(v any, out []any) []any {
	switch x := v.(type) {
	case map[string]any:
	case []any:
		for _, e := range x {
			out = leavesIn(e, out)
		}
	default:
		out = append(out, x)
	}
	return out
}

func matchLeaf(rules []rule, val any, present bool) bool {
	if val == NotJSON {
		return false
	}
	var leaves []any
	if present {
		leaves = leavesIn(val, nil)
	}
	for _, r := range rules {
		if r.kind == exists {
			if r.present == (len(leaves) > 0) {
				return true
			}
			continue
		}
		for _, l := range leaves {
			if r.matches(l) {
				return true
			}
		}
	}
	return false
}

func (r rule) matches(v any) bool {
	switch r.kind {
	case exact:
		switch want := r.value.(type) {
		case json.Number:
			got, ok := number(v)
			if !ok {
				return false
			}
			if n, isNum := v.(json.Number); isNum && n == want {
				return true
			}
			w, _ := want.Float64()
			return got == w
		default:
			return v == r.value
		}
	case prefix:
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, r.text)
	case suffix:
		s, ok := v.(string)
		return ok && strings.HasSuffix(s, r.text)
	case equalsIgnoreCase:
		s, ok := v.(string)
		return ok && strings.EqualFold(s, r.text)
	case anythingBut:
		return !r.excludes(v)
	case numeric:
		f, ok := number(v)
		if !ok {
			return false
		}
		if r.lower != nil && (f < *r.lower || (r.lowerOpen && f == *r.lower)) {
			return false
		}
		if r.upper != nil && (f > *r.upper || (r.upperOpen && f == *r.upper)) {
			return false
		}
		return true
	}
	return false
}

// excludes reports whether an anything-but rule rules v out.
func (r rule) excludes(v any) bool {
	s, isString := v.(string)
	switch r.butForm {
	case prefix:
		return isString && strings.HasPrefix(s, r.text)
	case suffix:
		return isString && strings.HasSuffix(s, r.text)
	case equalsIgnoreCase:
		return isString && slices.ContainsFunc(r.notStrings, func(n string) bool { return strings.EqualFold(s, n) })
	}
	if isString {
		return slices.Contains(r.notStrings, s)
	}
	if f, ok := number(v); ok {
		return slices.Contains(r.notNumbers, f)
	}
	return false
}

// number returns v as a float64 when it is a JSON number.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil && !math.IsInf(f, 0)
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func where(path string) string {
	if path == "" {
		return "pattern"
	}
	return path
}

func showJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// KinesisFields are the top-level fields a pattern for Kinesis records may test: data (the
// record's data, parsed as JSON) and the record's metadata as Lambda's Kinesis event names it.
var KinesisFields = []string{"data", "partitionKey", "sequenceNumber", "approximateArrivalTimestamp"}

// CompileKinesis compiles a pattern for Kinesis records: Compile, and every top-level field must
// be one of KinesisFields, so that a misspelt field ("Data") is an error rather than a pattern
// that never matches.
func CompileKinesis(src string) (*Pattern, error) {
	p, err := Compile(src)
	if err != nil {
		return nil, err
	}
	for _, k := range p.TopLevelKeys() {
		if !slices.Contains(KinesisFields, k) {
			return nil, fmt.Errorf("%s: unknown field: a Kinesis pattern tests %s", k, quoteList(KinesisFields))
		}
	}
	return p, nil
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
